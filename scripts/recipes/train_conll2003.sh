#!/usr/bin/env bash
# Train the English CoNLL-2003 NER model with GloVe 6B 50d and report wall time and test F1.
# Usage: scripts/recipes/train_conll2003.sh [OUT_DIR] [extra nertool train options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/en}; shift || true
C=../shared/corpora/conll2003
start=$(date +%s)
.venv/bin/nertool train "$C/train.txt" --dev "$C/valid.txt" --test "$C/test.txt" \
    --embeddings glove-6b-50d --out "$OUT" "$@"
echo "wall time: $(( $(date +%s) - start )) s"
.venv/bin/nertool evaluate "$OUT" "$C/test.txt"
