"""End-to-end tagging against the network alone, on the same input: raw text made of CoNLL-2003
test sentences (paragraphs of 8), written to a temporary file.

    .venv/bin/python scripts/bench_pipeline.py [MODEL] --threads 2 --mb 50

Prints: model-only tokens/s (the Tagger on the already-split sentences of the input, scores
included, as the pipeline computes them), end-to-end tokens/s (file -> documents -> tags ->
JSONL on disk, the code path of `nertool tag MODEL FILE -o OUT`), their ratio, and a profile of
the host side when --profile is given.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="en")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--mb", type=float, default=20.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    from nertool.conll import read_conll
    from nertool.errors import BadLines
    from nertool.inputs import read_documents
    from nertool.pipeline import TagOptions, tag_source
    from nertool.tagger import Tagger

    torch.set_num_threads(args.threads)
    tagger = Tagger.load(args.model, batch_size=args.batch_size)
    lines = [" ".join(t) for t, _ in read_conll(TEST)]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.txt", Path(tmp) / "out.jsonl"
        size = 0
        with src.open("w", encoding="utf-8") as f:
            while size < args.mb * 2**20:
                for i in range(0, len(lines), 8):
                    para = " ".join(lines[i : i + 8]) + "\n\n"
                    f.write(para)
                    size += len(para.encode())
        print(f"model {args.model}, threads {args.threads}, input {size / 2**20:.1f} MB, torch {torch.__version__}")

        # the same sentences, split beforehand: what the network side alone costs
        with src.open("rb") as stream:
            sents = [[t.text for t in s] for d in read_documents(stream, str(src), "text") for s in d.sentences]
        n_tok = sum(map(len, sents))
        tagger.clear_cache()
        t0 = time.perf_counter()
        for i in range(0, len(sents), 4 * args.batch_size):
            tagger.tag_sentences(sents[i : i + 4 * args.batch_size])
        model_s = time.perf_counter() - t0
        del sents
        print(f"model only (encode + network + Viterbi + marginals): {n_tok / model_s:,.0f} tokens/s ({model_s:.1f}s)")

        tagger.clear_cache()
        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t0 = time.perf_counter()
        with dst.open("wb") as out:
            for data in tag_source(tagger, str(src), TagOptions(input_format="text"), BadLines()):
                out.write(data)
        e2e_s = time.perf_counter() - t0
        if prof is not None:
            prof.disable()
            import pstats

            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        print(f"end to end (file -> JSONL on disk): {n_tok / e2e_s:,.0f} tokens/s, {size / 2**20 / e2e_s:.2f} MB/s "
              f"({e2e_s:.1f}s); {100 * model_s / e2e_s:.0f}% of the model-only rate")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
