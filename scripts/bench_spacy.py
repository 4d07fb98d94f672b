"""The spaCy component against the Tagger on the same texts, in one run: paragraphs of CoNLL-2003
test sentences as raw text, tagged by ``Tagger.pipe`` (nertool's tokenizer and sentence splitter)
and by ``nlp.pipe`` of a blank English pipeline with the ``nertool`` component (spaCy's
tokenizer; sentences split after . ! ?). Tokens/s counts each side's own tokens (best of the
repeats, after one untimed run). Run alone on an idle machine:

    .venv/bin/python scripts/bench_spacy.py [MODEL] [--threads 2] [--paragraphs 2000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"


def best_of(fn, repeats: int) -> tuple[float, int]:
    """(seconds of the fastest of ``repeats`` runs, what the last run returned)."""
    fn()
    best, out = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="en-fast")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--paragraphs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64, help="docs per nlp.pipe batch")
    args = ap.parse_args()
    if not TEST.is_file():
        sys.exit(f"needs {TEST}")
    import spacy

    from nertool import Tagger
    from nertool.data.conll import read_conll

    torch.set_num_threads(args.threads)
    lines = [" ".join(t) for t, _ in read_conll(TEST)]
    texts = [" ".join(lines[i : i + 4]) for i in range(0, len(lines), 4)]
    texts = (texts * (args.paragraphs // len(texts) + 1))[: args.paragraphs]
    tagger = Tagger.load(args.model, threads=args.threads)
    nlp = spacy.blank("en")
    nlp.add_pipe("nertool", config={"model": args.model})

    def with_tagger() -> int:
        return sum(len(d.tokens) for d in tagger.pipe(texts))

    def with_spacy() -> int:
        return sum(len(d) for d in nlp.pipe(texts, batch_size=args.batch_size))

    t_tagger, n_tagger = best_of(with_tagger, args.repeats)
    t_spacy, n_spacy = best_of(with_spacy, args.repeats)
    print(f"{len(texts)} paragraphs, {sum(map(len, texts)) / 2**20:.2f} MB, model {args.model}, {args.threads} threads")
    print(f"Tagger.pipe: {n_tagger:,} tokens in {t_tagger:.2f} s, {n_tagger / t_tagger:,.0f} tokens/s")
    print(f"nlp.pipe with the nertool component: {n_spacy:,} tokens in {t_spacy:.2f} s, {n_spacy / t_spacy:,.0f} tokens/s "
          f"({100 * (n_spacy / t_spacy) / (n_tagger / t_tagger):.0f}% of Tagger.pipe)")


if __name__ == "__main__":
    main()
