#!/usr/bin/env bash
# Train with the project's defaults and no pretrained vectors on CoNLL-2002 Spanish and Dutch
# (dev = testa, test = testb) and on CoNLL-2000 chunking (10% of train held out as dev).
# Usage: scripts/recipes/train_others.sh [es|nl|chunk ...] [-- extra nertool train options]
set -euo pipefail
cd "$(dirname "$0")/../.."
C=../shared/corpora
which=(); extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  which+=("$1"); shift
done
[ ${#which[@]} -gt 0 ] || which=(es nl chunk)
for w in "${which[@]}"; do
  start=$(date +%s)
  case $w in
    es) .venv/bin/nertool train $C/conll2002/esp.train --dev $C/conll2002/esp.testa --test $C/conll2002/esp.testb --out runs/es "${extra[@]}" ;;
    nl) .venv/bin/nertool train $C/conll2002/ned.train --dev $C/conll2002/ned.testa --test $C/conll2002/ned.testb --out runs/nl "${extra[@]}" ;;
    chunk) .venv/bin/nertool train $C/conll2000/train.txt --dev-fraction 0.1 --test $C/conll2000/test.txt --out runs/chunk "${extra[@]}" ;;
    *) echo "unknown corpus $w" >&2; exit 2 ;;
  esac
  echo "$w wall time: $(( $(date +%s) - start )) s"
done
