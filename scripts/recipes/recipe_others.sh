#!/usr/bin/env bash
# Issue 18's English recipe on the other corpora, declared 2026-12-01 20:40 UTC before any run:
# the defaults (two Bi-LSTM layers of 200, char CNN), no pretrained vectors, trained on train +
# dev for a fixed 30 epochs (patience off), seed 1, test F1 of the last epoch.
#   es: CoNLL-2002 esp.train + esp.testa, test esp.testb
#   nl: CoNLL-2002 ned.train + ned.testa, test ned.testb
#   chunk: CoNLL-2000 train (it has no dev), test test.txt
# Usage: [RUNS=runs/recipe_others] [THREADS=1] scripts/recipes/recipe_others.sh es|nl|chunk ...
#        (NERTOOL=command overrides .venv/bin/nertool)
set -u
cd "$(dirname "$0")/../.."
C=../shared/corpora
R=${RUNS:-runs/recipe_others}
mkdir -p "$R"
for w in "$@"; do
  case $w in
    es) { cat $C/conll2002/esp.train; echo; cat $C/conll2002/esp.testa; } > "$R/es_traindev.txt"
        train="$R/es_traindev.txt"; test=$C/conll2002/esp.testb ;;
    nl) { cat $C/conll2002/ned.train; echo; cat $C/conll2002/ned.testa; } > "$R/nl_traindev.txt"
        train="$R/nl_traindev.txt"; test=$C/conll2002/ned.testb ;;
    chunk) train=$C/conll2000/train.txt; test=$C/conll2000/test.txt ;;
    *) echo "unknown corpus $w" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  ${NERTOOL:-.venv/bin/nertool} train "$train" --test "$test" --epochs 30 --patience 0 \
    --threads ${THREADS:-1} --seed 1 --out "$R/$w" > "$R/$w.log" 2>&1
  echo "$w rc $? wall $(( $(date +%s) - start )) s" >> "$R/queue.log"
done
