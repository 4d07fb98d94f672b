#!/usr/bin/env bash
# Issue 18: the two-network ensemble recipe (scripts/recipes/recipe_en_ens2.sh) on CoNLL-2002 Spanish and
# Dutch, declared 2026-12-03 09:48 UTC before its runs (BENCHMARKS.md section 15): per corpus, two
# networks of section 9's recipe for the other corpora (defaults, no vectors, train + dev
# (testa), a fixed 30 epochs, patience off), seeds 1 and 2, all four side by side at --threads 1,
# combined with `nertool ensemble`, scored on testb. Dutch marks documents, so its ensemble is
# also decoded with --doc-context 1, as the English recipe is; Spanish marks none.
# Usage: [RUNS=runs/recipe_others_ens2] scripts/recipes/recipe_others_ens2.sh train|score
set -u
cd "$(dirname "$0")/../.."
C=../shared/corpora/conll2002
R=${RUNS:-runs/recipe_others_ens2}
N=${NERTOOL:-.venv/bin/nertool}
mkdir -p "$R"
case ${1:-} in
  train)
    { cat $C/esp.train; echo; cat $C/esp.testa; } > "$R/es_traindev.txt"
    { cat $C/ned.train; echo; cat $C/ned.testa; } > "$R/nl_traindev.txt"
    for c in es nl; do
      for s in 1 2; do
        ( start=$(date +%s)
          $N train "$R/${c}_traindev.txt" --epochs 30 --patience 0 --threads 1 --seed $s \
            --out "$R/${c}_s$s" > "$R/${c}_s$s.log" 2>&1
          echo "$c seed $s rc $? wall $(( $(date +%s) - start )) s" >> "$R/queue.log" ) &
      done
    done
    wait ;;
  score)
    for c in es nl; do
      rm -rf "$R/${c}_ens"
      $N ensemble "$R/${c}_s1" "$R/${c}_s2" --out "$R/${c}_ens"
    done
    for m in es_s1 es_s2 es_ens; do
      $N evaluate "$R/$m" $C/esp.testb --json > "$R/$m.json"
    done
    for m in nl_s1 nl_s2 nl_ens; do
      $N evaluate "$R/$m" $C/ned.testb --json > "$R/$m.json"
      $N evaluate "$R/$m" $C/ned.testb --json --doc-context 1 > "$R/$m.ctx.json"
    done ;;
  *) echo "usage: $0 train|score" >&2; exit 2 ;;
esac
