#!/usr/bin/env bash
# Dev screen of Nadam with gradient-norm clipping at 1 (BENCHMARKS.md section 10): the 8-epoch,
# train-only runs of section 7 (seeds 1-3) with only the optimiser and the clipping changed.
# Usage: RUNS=/some/dir scripts/experiments/screen_nadam.sh [SEEDS...]
set -euo pipefail
C=${CORPORA:-../shared/corpora}/conll2003
RUNS=${RUNS:-runs/screen_nadam}
mkdir -p "$RUNS"
for s in "${@:-1 2 3}"; do
    for seed in $s; do
        nertool train "$C/train.txt" --dev "$C/valid.txt" --test "$C/test.txt" --embeddings glove-6b-50d \
            --epochs 8 --patience 0 --seed "$seed" --threads 2 --optimizer nadam --clip 1 \
            --out "$RUNS/nadam_s$seed" > "$RUNS/nadam_s$seed.log" 2>&1
    done
done
