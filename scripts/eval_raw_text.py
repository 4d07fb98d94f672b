"""Span F1 of tagging CoNLL-2003 test from raw text, the way a user tags: each sentence's tokens
joined by single spaces into a text, split and tokenised by nertool, tagged, and the predicted
spans compared with the gold spans by their character offsets (an entity counts when its label,
start and end all match). Also lists the CoNLL tokens that nertool's tokeniser would split, by
shape (letters as a/A, digits as 0).

    .venv/bin/python scripts/eval_raw_text.py [MODEL ...]
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

TEST = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "conll2003" / "test.txt"


def shape(token: str) -> str:
    return re.sub(r"[0-9]", "0", re.sub(r"[a-z]", "a", re.sub(r"[A-Z]", "A", token)))


def main() -> None:
    from seqeval.metrics.sequence_labeling import get_entities

    from nertool import Tagger
    from nertool.data.conll import read_conll
    from nertool.data.text import tokenize

    if not TEST.is_file():
        sys.exit(f"needs {TEST}")
    data = read_conll(TEST)
    texts, gold = [], set()
    for k, (toks, tags) in enumerate(data):
        starts, pos = [], 0
        for t in toks:
            starts.append(pos)
            pos += len(t) + 1
        texts.append(" ".join(toks))
        gold.update((k, label, starts[a], starts[e] + len(toks[e])) for label, a, e in get_entities(tags))
    split = Counter(shape(t) for toks, _ in data for t in toks if [x.text for x in tokenize(t)] != [t])
    print(f"CoNLL-2003 test: {sum(map(len, (t for t, _ in data)))} tokens; {sum(split.values())} of them "
          f"nertool's tokeniser splits; most common shapes: {split.most_common(8)}")
    for model in sys.argv[1:] or ["en-fast", "en"]:
        tagger = Tagger.load(model)
        pred, tokens = set(), 0
        for k, doc in enumerate(tagger.pipe(texts)):
            tokens += len(doc.tokens)
            pred.update((k, s.label, s.start, s.end) for s in doc.spans)
        tp = len(gold & pred)
        p, r = tp / max(1, len(pred)), tp / max(1, len(gold))
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        print(f"{model}: raw-text span F1 {100 * f1:.2f} (precision {100 * p:.2f}, recall {100 * r:.2f}); "
              f"{tokens} tokens from the text")


if __name__ == "__main__":
    main()
