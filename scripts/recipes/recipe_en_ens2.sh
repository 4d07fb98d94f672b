#!/usr/bin/env bash
# Issue 18, the two-network ensemble recipe, declared 2026-12-03 06:11 UTC before any of its runs
# (BENCHMARKS.md section 14). A run of the recipe is the ensemble (`nertool ensemble`) of two
# networks of section 8's recipe (defaults, GloVe 6B 50d, CoNLL-2003 train + dev, a fixed 30
# epochs, patience off) that differ only in seed, decoded with `--doc-context 1` (section 9).
# Runs: A = seeds {1, 2}, B = {3, 4}, C = {5, 6}. Seed 1 is section 8's run, the bundled `en`
# (trained with --threads 2, alone); seeds 2-6 are trained here, side by side, --threads 1 each.
# Usage: [RUNS=runs/recipe_en_ens2] scripts/recipes/recipe_en_ens2.sh train|score
#        (NERTOOL=command overrides .venv/bin/nertool)
set -u
cd "$(dirname "$0")/../.."
C=../shared/corpora/conll2003
R=${RUNS:-runs/recipe_en_ens2}
N=${NERTOOL:-.venv/bin/nertool}
mkdir -p "$R"
case ${1:-} in
  train)
    { cat $C/train.txt; echo; cat $C/valid.txt; } > "$R/traindev.txt"
    for s in 2 3 4 5 6; do
      ( start=$(date +%s)
        $N train "$R/traindev.txt" --test $C/test.txt --embeddings glove-6b-50d --epochs 30 \
          --patience 0 --threads 1 --seed $s --out "$R/td_s$s" > "$R/td_s$s.log" 2>&1
        echo "seed $s rc $? wall $(( $(date +%s) - start )) s" >> "$R/queue.log" ) &
    done
    wait ;;
  score)
    members() { case $1 in A) echo en "$R/td_s2" ;; B) echo "$R/td_s3" "$R/td_s4" ;; C) echo "$R/td_s5" "$R/td_s6" ;; esac; }
    for s in 2 3 4 5 6; do
      $N evaluate "$R/td_s$s" $C/test.txt --json > "$R/td_s$s.plain.json"
      $N evaluate "$R/td_s$s" $C/test.txt --doc-context 1 --json > "$R/td_s$s.ctx1.json"
    done
    for e in A B C; do
      rm -rf "$R/ens_$e"
      $N ensemble $(members $e) --out "$R/ens_$e" --refer
      $N evaluate "$R/ens_$e" $C/test.txt --json > "$R/ens_$e.plain.json"
      $N evaluate "$R/ens_$e" $C/test.txt --doc-context 1 --json > "$R/ens_$e.ctx1.json"
    done ;;
  *) echo "usage: $0 train|score" >&2; exit 2 ;;
esac
