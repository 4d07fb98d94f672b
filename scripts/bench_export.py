"""Exported files against the eager model: tokens/s on CoNLL-2003 test (Viterbi tags through
``Tagger.tag_sentences``, and the file's own tag entry point where it has one; the best of
``--repeats`` rounds, each round timing every file once), file size and span F1, for eager torch,
TorchScript (.pt), ONNX float and ONNX int8. Run alone on an idle machine:

    .venv/bin/python scripts/bench_export.py [MODEL ...] [--threads 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"


def timed(fn) -> float:
    """Seconds of one run of ``fn()``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 2**20


def file_alone(path: Path, tagger, sents: list[list[str]], batch_size: int):
    """The file's own network and Viterbi on id batches made beforehand by nertool's encoder:
    ONNX Runtime's ``tags`` output, or the TorchScript module's ``forward``."""
    enc = tagger.encoder
    batches = list(enc.batches(enc.encode(sents), batch_size))
    if path.suffix == ".pt":
        m = torch.jit.load(str(path))
        return lambda: [m(b.words, b.chars, b.char_index, b.mask) for b in batches]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.add_session_config_entry("session.force_spinning_stop", "1")  # as nertool's: files are timed in turns
    session = ort.InferenceSession(str(path), opts)
    feeds = [{"words": b.words.numpy(), "chars": b.chars.numpy(), "char_index": b.char_index.numpy(),
              "mask": b.mask.numpy()} for b in batches]
    return lambda: [session.run(["tags"], feed) for feed in feeds]


def bench(model: str, sents, gold, threads: int, repeats: int, batch_size: int, out: Path) -> None:
    from seqeval.metrics import f1_score

    from nertool.store.export import export
    from nertool.store.loading import load, resolve_model
    from nertool.store.onnx_export import export_onnx
    from nertool.tag.tagger import Tagger

    bundle = load(model)
    files = {"eager torch": resolve_model(model), "TorchScript": export(bundle, out / f"{model}.pt"),
             "ONNX float": export_onnx(bundle, out / f"{model}.onnx"),
             "ONNX int8": export_onnx(bundle, out / f"{model}-int8.onnx", quantize="int8")}
    tokens = sum(map(len, sents))
    print(f"\n{model}: CoNLL-2003 test, {len(sents)} sentences, {tokens} tokens, {threads} threads, batch {batch_size}")
    print(f"{'':12} {'file MB':>8} {'tokens/s via Tagger':>20} {'ids in, file alone':>21} {'F1':>7} "
          f"{'sentences tagged unlike eager':>30}")
    # every file loaded first, then timed in turns (each round times each file once): this VM's
    # speed swings between minutes, and rows timed in different minutes would not compare
    taggers = {name: Tagger.load(str(path), threads=threads, batch_size=batch_size) for name, path in files.items()}
    runs = {name: (lambda t=t: t.tag_sentences(sents, scores=False)) for name, t in taggers.items()}
    alone = {}
    with torch.inference_mode():
        for name, path in files.items():
            if name != "eager torch":
                alone[name] = file_alone(Path(path), taggers[name], sents, batch_size)
    best = {name: float("inf") for name in files}
    best_alone = {name: float("inf") for name in alone}
    for fn in [*runs.values(), *alone.values()]:
        fn()  # warm
    for _ in range(repeats):
        for name in files:
            best[name] = min(best[name], timed(runs[name]))
            if name in alone:
                with torch.inference_mode():
                    best_alone[name] = min(best_alone[name], timed(alone[name]))
    eager = None
    for name, path in files.items():
        tags = [r.tags for r in taggers[name].tag_sentences(sents, scores=False)]
        eager = eager or tags
        unlike = sum(a != b for a, b in zip(tags, eager))
        own = f"{tokens / best_alone[name]:,.0f}" if name in alone else ""
        print(f"{name:12} {size_mb(Path(path)):8.1f} {tokens / best[name]:20,.0f} {own:>21} "
              f"{100 * f1_score(gold, tags):7.2f} {unlike:30d}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["en-fast", "en"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    if not TEST.is_file():
        sys.exit(f"needs {TEST}")
    from nertool.data.conll import read_conll

    torch.set_num_threads(args.threads)
    data = read_conll(TEST)
    sents, gold = [t for t, _ in data], [g for _, g in data]
    with tempfile.TemporaryDirectory() as d:
        for model in args.models:
            bench(model, sents, gold, args.threads, args.repeats, args.batch_size, Path(d))


if __name__ == "__main__":
    main()
