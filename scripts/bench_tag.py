"""Tagging speed: CoNLL-2003 test set (pre-tokenised) and a large raw text file, tokens/s and
peak memory. Run alone on an idle machine:

    .venv/bin/python scripts/bench_tag.py MODEL [--threads 2] [--raw-mb 50]
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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_raw_text(tagger, sents: list[list[str]], raw_mb: float, batch_size: int) -> None:
    """A raw text file of ``raw_mb`` MB made of ``sents``, tagged as a stream through the same path
    as `nertool tag` (to JSONL, spans with scores)."""
    from nertool.data.inputs import read_documents, segment_documents
    from nertool.tag.output import format_jsonl

    lines = [" ".join(s) for s in sents]
    target = int(raw_mb * 1024 * 1024)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        size = 0
        while size < target:
            for i in range(0, len(lines), 8):
                para = " ".join(lines[i : i + 8]) + "\n\n"
                f.write(para)
                size += len(para.encode())
        path = f.name
    try:
        t0 = time.perf_counter()
        n_raw = 0
        with open(path, "rb") as stream, open(os.devnull, "wb") as sink:
            docs = segment_documents(read_documents(stream, path, "text", lang=None), part=4 * batch_size)
            for doc, results in tagger.tag_documents(docs, batch_size=batch_size):
                n_raw += sum(len(s) for s in doc.sentences)
                sink.write(format_jsonl(doc, results))
        dt = time.perf_counter() - t0
        print(f"raw text {size / 2**20:.0f} MB -> jsonl (tokenise, split, tag, spans with scores): "
              f"{n_raw / dt:,.0f} tokens/s, {size / 2**20 / dt:.2f} MB/s ({dt:.1f}s)")
    finally:
        os.unlink(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="en")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--raw-mb", type=float, default=20.0, help="size of the generated raw text file; 0 skips that leg")
    args = ap.parse_args()

    from nertool.data.conll import read_conll
    from nertool.runtime import machine_record
    from nertool.tag.tagger import Tagger

    torch.set_num_threads(args.threads)
    tagger = Tagger.load(args.model, batch_size=args.batch_size)
    sents = [t for t, _ in read_conll(TEST)]
    n_tok = sum(map(len, sents))
    machine = machine_record(torch.device("cpu"))
    print(f"machine: {machine['cpu']} ({machine['cpu_capability']}), {os.cpu_count()} cores, "
          f"torch {machine['torch']}, threads {machine['threads']}")
    print(f"model: {args.model}; CoNLL-2003 test: {len(sents)} sentences, {n_tok} tokens")
    tagger.tag_sentences(sents[:500])  # warm-up
    # cold: the Tagger's per-word character features are cleared before each timed pass, so
    # every word type of the test set is encoded from its characters; warm: a second pass
    for scores in (False, True):
        cold = warm = float("inf")
        for _ in range(args.repeats):
            tagger.clear_cache()
            t0 = time.perf_counter()
            tagger.tag_sentences(sents, scores=scores)
            cold = min(cold, time.perf_counter() - t0)
            t0 = time.perf_counter()
            tagger.tag_sentences(sents, scores=scores)
            warm = min(warm, time.perf_counter() - t0)
        what = "Viterbi + span/token marginals" if scores else "Viterbi only"
        for name, t in (("cold", cold), ("warm", warm)):
            print(f"conll2003 test, {what}, {name}: {n_tok / t:,.0f} tokens/s, {len(sents) / t:,.0f} sentences/s "
                  f"({t:.3f}s, best of {args.repeats})")
    tagger.clear_cache()

    if args.raw_mb > 0:
        bench_raw_text(tagger, sents, args.raw_mb, args.batch_size)
    print(f"peak memory (max RSS): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
