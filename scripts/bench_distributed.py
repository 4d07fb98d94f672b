"""Training throughput: 1 process x N threads against N processes x 1 thread (torchrun, gloo).

    .venv/bin/python scripts/bench_distributed.py --procs 1,2 [--threads 2] [--epochs 1]

Trains on CoNLL-2003 train (GloVe 6B 50d, defaults) with the same global batch (32 sentences:
--batch-size 32 / N per process) and prints training sentences/s from each run's first epoch
(epoch_seconds in metrics.jsonl: the training pass alone, without dev evaluation or start-up)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
C = ROOT.parent / "shared" / "corpora" / "conll2003"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", default="1,2", help="process counts to compare")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the one-process run")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32, help="global batch size")
    ap.add_argument("--train", default=str(C / "train.txt"))
    ap.add_argument("--dev", default=str(C / "valid.txt"))
    args = ap.parse_args()
    n_train = sum(1 for block in Path(args.train).read_text().split("\n\n") if block.strip() and not block.startswith("-DOCSTART-"))
    for n in (int(x) for x in args.procs.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [sys.executable, "-m", "nertool", "train", args.train, "--dev", args.dev, "--embeddings", "glove-6b-50d",
                   "--epochs", str(args.epochs), "--out", str(out), "--batch-size", str(args.batch // n), "--seed", "1",
                   "--threads", str(args.threads if n == 1 else 1)]
            if n > 1:
                cmd += ["--nproc", str(n)]
            t0 = time.monotonic()
            p = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.monotonic() - t0
            if p.returncode:
                sys.exit(p.stderr[-3000:])
            recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
            secs = [r["epoch_seconds"] for r in recs]
            print(f"{n} process(es) x {args.threads if n == 1 else 1} thread(s): epoch {min(secs):.1f} s, "
                  f"{n_train / min(secs):,.0f} sentences/s, dev F1 {100 * recs[-1]['dev_f1']:.2f} after {len(recs)} "
                  f"epoch(s), wall {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
