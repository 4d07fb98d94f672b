"""Batch tagging throughput of an exported TorchScript file (``nertool export``), on CPU or GPU.

    .venv/bin/python scripts/bench_gpu.py tagger.pt --device cuda --mb 50
    .venv/bin/python scripts/bench_gpu.py tagger.pt --device cpu

Tokenised sentences (the CoNLL-2003 test set repeated up to --mb megabytes of text) are encoded
once on the CPU with the file's own ``encode``, then tagged in length-sorted batches of about
--batch-tokens tokens with the tensor entry point; reported: tokens/s of the tensor path, and of
the full path through ``Tagger`` (tokens in, tags out) for comparison.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--mb", type=float, default=20.0)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--corpus", type=Path, default=TEST, help="CoNLL file whose sentences are repeated")
    ap.add_argument("--check", default="", help="model (directory or name) whose eager CPU predictions "
                    "must equal the exported file's on --corpus, token for token")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from nertool.data.conll import read_conll
    from nertool.store.loading import flatten_rnn_weights
    from nertool.tag.tagger import Tagger

    base = [t for t, _ in read_conll(args.corpus)]
    size = sum(len(" ".join(s)) + 1 for s in base)
    sents = base * max(1, int(args.mb * 2**20 / size))
    n_tok = sum(map(len, sents))
    dev = torch.device(args.device)
    m = torch.jit.load(args.model, map_location=dev)
    flatten_rnn_weights(m)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    print(f"device: {args.device} ({name}), torch {torch.__version__}; {len(sents)} sentences, {n_tok} tokens")

    # encode once, in length-sorted batches of ~batch_tokens tokens
    order = sorted(range(len(sents)), key=lambda i: len(sents[i]))
    batches, cur, cur_max = [], [], 0
    for i in order:
        n = len(sents[i])
        if cur and max(cur_max, n) * (len(cur) + 1) > args.batch_tokens:
            batches.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, n)
    batches.append(cur)
    t0 = time.perf_counter()
    encoded = [m.encode([sents[i] for i in b]) for b in batches]
    enc_s = time.perf_counter() - t0
    with torch.inference_mode():
        m(*encoded[0])  # warm-up
        # pass 1 meets each batch shape for the first time (cuDNN plans, allocator growth);
        # pass 2 is the steady state of a long tagging job
        for p in (1, 2):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for e in encoded:
                m(*e)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(f"tensor path (emissions + constrained Viterbi), pass {p}: {n_tok / dt:,.0f} tokens/s "
                  f"({dt:.2f}s, {len(batches)} batches)", flush=True)
    print(f"TorchScript encode on CPU (not included above): {n_tok / enc_s:,.0f} tokens/s")

    if args.check:
        eager = [r.tags for r in Tagger.load(args.check).tag_sentences(base, scores=False)]
        on_dev = [r.tags for r in Tagger.load(args.model, device=args.device, batch_size=1024).tag_sentences(base, scores=False)]
        direct = []
        for i in range(0, len(base), 1024):
            direct += m.tag(base[i : i + 1024])
        same = sum(a == b for a, b in zip(eager, on_dev))
        same_direct = sum(a == b for a, b in zip(eager, direct))
        print(f"exported on {args.device} vs eager {args.check} on CPU: {same}/{len(base)} sentences equal via Tagger, "
              f"{same_direct}/{len(base)} via m.tag; {sum(map(len, base))} tokens")

    tagger = Tagger.load(args.model, device=args.device, batch_size=1024)
    tagger.tag_sentences(base[:500], scores=False)
    t0 = time.perf_counter()
    tagger.tag_sentences(sents, scores=False)
    dt = time.perf_counter() - t0
    print(f"Tagger path (tokens in, tags out, Python encoding): {n_tok / dt:,.0f} tokens/s ({dt:.2f}s)")


if __name__ == "__main__":
    main()
