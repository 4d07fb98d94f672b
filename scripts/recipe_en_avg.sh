#!/usr/bin/env bash
# Issue 18, BENCHMARKS.md section 11: the recipe of scripts/recipe_en.sh extended to 35 epochs
# with checkpoint averaging over epochs 31-35 (--average-last 5). Extending the 30-epoch runs is
# exact: the result is the run an uninterrupted 35-epoch one with --average-last 5 would be.
# Usage: [RUNS=runs/recipe_en] scripts/recipe_en_avg.sh   (after scripts/recipe_en.sh; the runs
# are extended in place)
set -u
cd "$(dirname "$0")/.."
C=../shared/corpora/conll2003
R=${RUNS:-runs/recipe_en}
for s in 1 2 3; do
  start=$(date +%s)
  ${NERTOOL:-.venv/bin/nertool} train $R/traindev.txt --test $C/test.txt --resume $R/td_s$s \
    --epochs 35 --average-last 5 > $R/td_s$s.avg.log 2>&1
  echo "seed $s extended rc $? wall $(( $(date +%s) - start )) s" >> $R/queue.log
done
