#!/usr/bin/env bash
# Reproduce the bundled English model of 2026-11-22 to 2026-12-01 (replaced by scripts/recipe_en.sh's
# seed-1 model and by scripts/train_en_fast.sh; this writes RUN_DIR-bundled): GloVe 6B 50d, one Bi-LSTM layer (give
# --layers 1 --hidden-size 100 as in BENCHMARKS.md; the defaults have two layers since 2026-11-23),
# trained on CoNLL-2003 train + dev (dev cannot then choose an epoch, so the number of epochs is
# fixed from the dev-selected runs in BENCHMARKS.md), then compacted to float16 with the 100,000
# most frequent GloVe words never seen in training (the size chosen on dev for a train-only run),
# whose vectors are stored as 4-bit codes.
# Usage: scripts/train_bundled_en.sh [RUN_DIR] [EPOCHS] [extra nertool train options...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/en_traindev}; EPOCHS=${2:-25}; shift 2 || shift $# || true
C=../shared/corpora/conll2003
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
{ cat "$C/train.txt"; echo; cat "$C/valid.txt"; } > "$TMP/train+dev.txt"
start=$(date +%s)
.venv/bin/nertool train "$TMP/train+dev.txt" --test "$C/test.txt" --embeddings glove-6b-50d \
    --epochs "$EPOCHS" --patience 0 --out "$OUT" "$@"
echo "wall time: $(( $(date +%s) - start )) s"
.venv/bin/python scripts/make_bundled_model.py "$OUT" --candidates 100000 --dev-in-train --out "$OUT-bundled"
.venv/bin/nertool evaluate "$OUT-bundled" "$C/test.txt"
