"""The decoder alone: Viterbi, confidences (token, span, per-label marginals) and n-best on
random tag scores shaped like CoNLL-2003 batches, and one long sentence.

    .venv/bin/python scripts/bench_decode.py --threads 2 [--repeat 5]

Prints tokens/s for each mode. Run it under PYTHONPATH=<another checkout> to compare two
versions on the same machine in the same minutes (alternate them: this VM's speed drifts).
"""
from __future__ import annotations

import argparse
import time

import torch

LABELS = ["O"] + [f"{p}-{t}" for t in ("PER", "LOC", "ORG", "MISC") for p in "BIES"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--long", type=int, default=20_000, help="tokens of the long sentence")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nertool.model.decoding import constraint_bias
    from nertool.tag.decode import Decoder
    from nertool.tag.options import TagOptions

    g = torch.Generator().manual_seed(0)
    k = len(LABELS)
    trans = tuple(torch.randn(*b.shape, generator=g) * 2 + b for b in constraint_bias("BIOES", LABELS))
    decoder = Decoder(LABELS, "BIOES", "BIOES", trans, torch.device("cpu"))
    lengths = torch.randint(3, 40, (256,), generator=g).sort(descending=True).values
    batches = []
    for _ in range(20):
        em = torch.randn(256, int(lengths.max()), k, generator=g) * 4
        em[:, :, 0] += 3.0  # mostly O, as in text
        batches.append((em, torch.arange(em.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)))
    n_tokens = int(lengths.sum()) * len(batches)
    long_em = torch.randn(1, args.long, k, generator=g) * 4
    long_mask = torch.ones(1, args.long, dtype=torch.bool)
    modes = {"viterbi": TagOptions(scores=False), "confidences": TagOptions(), "marginals": TagOptions(marginals=True),
             "nbest 3": TagOptions(nbest=3)}
    for em, mask in batches[:3]:  # warm-up
        decoder.decode(em, mask, TagOptions(nbest=3, marginals=True))
    for name, opts in modes.items():
        best = 0.0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for em, mask in batches:
                decoder.decode(em, mask, opts)
            best = max(best, n_tokens / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        decoder.decode(long_em, long_mask, opts)
        long_rate = args.long / (time.perf_counter() - t0)
        print(f"{name:12s} batches of 256: {best:12,.0f} tokens/s   one {args.long:,}-token sentence: {long_rate:10,.0f} tokens/s",
              flush=True)


if __name__ == "__main__":
    main()
