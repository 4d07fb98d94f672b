#!/usr/bin/env bash
# Issue 18 recipe, declared 2026-12-01 17:30 UTC before any run: the defaults at d82e0ed
# (two Bi-LSTM layers of 200, GloVe 6B 50d), CoNLL-2003 train + dev, fixed 30 epochs, no dev,
# patience off, --threads 2, seeds 1, 2, 3, one after another. Test F1 of the last epoch.
# Usage: [RUNS=runs/recipe_en] scripts/recipes/recipe_en.sh   (NERTOOL=command overrides .venv/bin/nertool)
set -u
cd "$(dirname "$0")/../.."
C=../shared/corpora/conll2003
mkdir -p ${RUNS:-runs/recipe_en}
{ cat $C/train.txt; echo; cat $C/valid.txt; } > ${RUNS:-runs/recipe_en}/traindev.txt
for s in 1 2 3; do
  start=$(date +%s)
  ${NERTOOL:-.venv/bin/nertool} train ${RUNS:-runs/recipe_en}/traindev.txt \
    --test $C/test.txt --embeddings glove-6b-50d --epochs 30 --patience 0 --threads 2 \
    --seed $s --out ${RUNS:-runs/recipe_en}/td_s$s > ${RUNS:-runs/recipe_en}/td_s$s.log 2>&1
  echo "seed $s rc $? wall $(( $(date +%s) - start )) s" >> ${RUNS:-runs/recipe_en}/queue.log
done
