"""End-to-end tagging against the network alone, on the same input: raw text made of CoNLL-2003
test sentences (paragraphs of 8), written to a temporary file.

    .venv/bin/python scripts/bench_pipeline.py [MODEL] --threads 2 --mb 50 --workers 1,2

Prints: model-only tokens/s (the Tagger on the already-split sentences of the input, scores
included, as the pipeline computes them), end-to-end tokens/s of the in-process path (file ->
documents -> tags -> JSONL on disk, the code path of `nertool tag MODEL FILE -o OUT --workers 1`),
their ratio, and a profile of the host side when --profile is given. For each value of --workers,
the wall time of the command `nertool tag MODEL FILE -o OUT --workers N` itself (process start and
model loading included) and its peak RSS (the largest of its processes).
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
    ap.add_argument("--workers", default="", help="comma-separated worker counts to time through the CLI")
    ap.add_argument("--skip-model", action="store_true", help="only the CLI timings")
    ap.add_argument("--ray", type=int, default=0, help="also time `--ray local --workers N` (JSONL shards)")
    ap.add_argument("--in-process", action="store_true", help="also time the in-process path (with --profile: profile it)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: the model's device, in process and in the CLI")
    ap.add_argument("--corpus", type=Path, default=TEST, help="CoNLL file whose sentences make the text")
    args = ap.parse_args()

    from nertool.data.conll import read_conll
    from nertool.data.inputs import read_documents
    from nertool.errors import BadLines
    from nertool.tag.engines import InProcess
    from nertool.tag.options import TagOptions
    from nertool.tag.tagger import Tagger

    torch.set_num_threads(args.threads)
    tagger = Tagger.load(args.model, device=args.device, batch_size=args.batch_size)
    lines = [" ".join(t) for t, _ in read_conll(args.corpus)]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.txt", Path(tmp) / "out.jsonl"
        size = 0
        with src.open("w", encoding="utf-8") as f:
            while size < args.mb * 2**20:
                for i in range(0, len(lines), 8):
                    para = " ".join(lines[i : i + 8]) + "\n\n"
                    f.write(para)
                    size += len(para.encode())
        print(f"model {args.model}, device {args.device}, threads {args.threads}, input {size / 2**20:.1f} MB, "
              f"torch {torch.__version__}, {os.cpu_count()} CPUs")

        with src.open("rb") as stream:
            n_tok = sum(len(s) for d in read_documents(stream, str(src), "text") for s in d.sentences)
        if args.workers:
            for w in map(int, args.workers.split(",")):
                _time_cli(args.model, src, Path(tmp) / f"w{w}.jsonl", w, args.threads, n_tok, size,
                          ["--device", args.device] if args.device != "cpu" else [])
        if args.ray:
            _time_cli(args.model, src, Path(tmp) / "ray.jsonl", args.ray, args.threads, n_tok, size, ["--ray", "local"])
        if args.skip_model:
            return
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

        if not (args.in_process or args.profile):
            return
        tagger.clear_cache()
        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t0 = time.perf_counter()
        with dst.open("wb") as out:
            engine = InProcess(tagger, TagOptions(input_format="text", batch_size=args.batch_size))
            for _, data, _, _ in engine.run([str(src)], BadLines()):
                out.write(data)
        e2e_s = time.perf_counter() - t0
        if prof is not None:
            prof.disable()
            import pstats

            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        print(f"end to end (file -> JSONL on disk): {n_tok / e2e_s:,.0f} tokens/s, {size / 2**20 / e2e_s:.2f} MB/s "
              f"({e2e_s:.1f}s); {100 * model_s / e2e_s:.0f}% of the model-only rate")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (from /proc), in MB."""
    parent, rss = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parent[pid], rss[pid] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, todo = set(), [root]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += [c for c, pp in parent.items() if pp == p and c not in tree]
    return sum(rss.get(p, 0) for p in tree) / 2**20


def _time_cli(model, src, dst, workers, threads, n_tok, size, extra=()) -> None:
    import subprocess
    import threading

    cmd = [sys.executable, "-m", "nertool", "tag", model, str(src), "-o", str(dst), "--workers", str(workers), *extra]
    if workers == 1 and "--ray" not in extra:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = [0.0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    wall = time.perf_counter() - t0
    sampler.join()
    print(f"nertool tag {' '.join(extra) + ' ' if extra else ''}--workers {workers}{f' --threads {threads}' if workers == 1 and '--ray' not in extra else ''}: "
          f"{n_tok / wall:,.0f} tokens/s, {size / 2**20 / wall:.2f} MB/s ({wall:.1f}s wall, process start and "
          f"model loading included); peak RSS of all its processes {peak[0]:,.0f} MB", flush=True)


if __name__ == "__main__":
    sys.exit(main())
