#!/usr/bin/env bash
# Issue 18, BENCHMARKS.md section 11: the runs of scripts/recipes/recipe_en.sh extended to EPOCHS (default
# 35), with --average-last AVERAGE (default 0: the EMA weights alone). Extending the 30-epoch runs
# is exact: the result is the run an uninterrupted EPOCHS-epoch one would be.
# Usage: [RUNS=runs/recipe_en] [EPOCHS=35] [AVERAGE=0] scripts/recipes/recipe_en_extend.sh   (after
# scripts/recipes/recipe_en.sh; the runs are extended in place)
set -u
cd "$(dirname "$0")/../.."
C=../shared/corpora/conll2003
R=${RUNS:-runs/recipe_en}
for s in 1 2 3; do
  start=$(date +%s)
  ${NERTOOL:-.venv/bin/nertool} train $R/traindev.txt --test $C/test.txt --resume $R/td_s$s \
    --epochs ${EPOCHS:-35} --average-last ${AVERAGE:-0} > $R/td_s$s.to${EPOCHS:-35}.log 2>&1
  echo "seed $s extended to ${EPOCHS:-35} rc $? wall $(( $(date +%s) - start )) s" >> $R/queue.log
done
