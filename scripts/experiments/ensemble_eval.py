"""Score an ensemble of models on a CoNLL file: their emission and transition scores are summed
(one CRF over the sum) and decoded with the constrained Viterbi. The models must share their
vocabularies and labels (runs of one recipe on one training set, differing in seed).

    .venv/bin/python scripts/experiments/ensemble_eval.py TEST RUN [RUN ...]
"""
from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("test")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nertool.data import tags as tagmod
    from nertool.model.encoding import Encoder
    from nertool.store.checkpoint import load_model
    from nertool.data.conll import read_conll
    from nertool.model.decoding import viterbi
    from nertool.training.evaluate import score

    bundles = [load_model(r) for r in args.runs]
    first = bundles[0]
    for r, b in zip(args.runs[1:], bundles[1:]):
        if b.words.index() != first.words.index() or b.chars.chars != first.chars.chars or b.labels != first.labels:
            raise SystemExit(f"{r}: vocabulary or labels differ from {args.runs[0]}'s; not an ensemble of one recipe")
    sents = read_conll(args.test)
    toks = [t for t, _ in sents]
    encoder = Encoder(first.words, first.chars, first.model.config.max_word_chars)
    decode = tagmod.id_decoder(first.labels, first.internal_scheme, first.scheme)
    parts = [b.model.transition_scores() for b in bundles]
    start, end, trans = (sum(p[i] for p in parts) for i in range(3))
    pred: list[list[str]] = [[] for _ in toks]
    with torch.inference_mode():
        for batch in encoder.batches(encoder.encode(toks), 512, max_tokens=512 * 50):
            em = sum(b.model.emissions(batch.words, batch.chars, batch.char_index, batch.mask) for b in bundles)
            best, _ = viterbi(em, batch.mask, start, end, trans)
            for row, i in zip(best.tolist(), batch.index):
                pred[i] = decode(row[: len(toks[i])])
    result = score([g for _, g in sents], pred, first.scheme, "default")
    print(json.dumps({"models": args.runs, **{k: result[k] for k in ("precision", "recall", "f1")}}))


if __name__ == "__main__":
    main()
