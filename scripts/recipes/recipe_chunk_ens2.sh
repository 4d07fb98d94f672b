#!/usr/bin/env bash
# Issue 18: the two-network ensemble recipe (scripts/recipes/recipe_en_ens2.sh) on CoNLL-2000 chunking,
# declared 2026-12-03 07:41 UTC before its runs (BENCHMARKS.md section 14): two networks of
# section 9's recipe for the other corpora (defaults, no vectors, train only: CoNLL-2000 has no
# dev, a fixed 30 epochs, patience off), seeds 1 and 2, side by side, --threads 1 each, combined
# with `nertool ensemble`. CoNLL-2000 marks no documents, so there is no document context.
# Usage: [RUNS=runs/recipe_chunk_ens2] scripts/recipes/recipe_chunk_ens2.sh train|score
set -u
cd "$(dirname "$0")/../.."
C=../shared/corpora/conll2000
R=${RUNS:-runs/recipe_chunk_ens2}
N=${NERTOOL:-.venv/bin/nertool}
mkdir -p "$R"
case ${1:-} in
  train)
    for s in 1 2; do
      ( start=$(date +%s)
        $N train $C/train.txt --test $C/test.txt --epochs 30 --patience 0 --threads 1 --seed $s \
          --out "$R/chunk_s$s" > "$R/chunk_s$s.log" 2>&1
        echo "seed $s rc $? wall $(( $(date +%s) - start )) s" >> "$R/queue.log" ) &
    done
    wait ;;
  score)
    rm -rf "$R/ens"
    $N ensemble "$R/chunk_s1" "$R/chunk_s2" --out "$R/ens"
    for m in chunk_s1 chunk_s2 ens; do $N evaluate "$R/$m" $C/test.txt --json > "$R/$m.json"; done ;;
  *) echo "usage: $0 train|score" >&2; exit 2 ;;
esac
