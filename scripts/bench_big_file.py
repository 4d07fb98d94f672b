"""One large text file tagged end to end by the CLI: wall time, tokens/s and the peak resident memory
of all its processes.

    .venv/bin/python scripts/bench_big_file.py [MODEL] --gb 1 [--workers 0] [--keep DIR]

The input is CoNLL-2003 test as raw text (paragraphs of 8 sentences) repeated to the size asked;
its token count is that of one copy (split by nertool's own reader) times the number of copies.
The command timed is `nertool tag MODEL BIG.txt -o BIG.jsonl --workers N` (0: the default).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import TEST, _time_cli  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="en")
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write the input and output here (default: a temporary directory, removed)")
    args = ap.parse_args()

    from nertool.data.conll import read_conll
    from nertool.data.inputs import read_documents

    lines = [" ".join(t) for t, _ in read_conll(TEST)]
    unit = "".join(" ".join(lines[i : i + 8]) + "\n\n" for i in range(0, len(lines), 8)).encode()
    unit_tokens = sum(len(s) for d in read_documents(io.BytesIO(unit), "unit.txt", "text") for s in d.sentences)
    copies = max(1, round(args.gb * 2**30 / len(unit)))
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        src, dst = where / "big.txt", where / "big.jsonl"
        with src.open("wb") as f:
            for _ in range(copies):
                f.write(unit)
        size = src.stat().st_size
        print(f"model {args.model}, input {size / 2**30:.2f} GiB ({copies} copies of CoNLL-2003 test, "
              f"{unit_tokens * copies:,} tokens), cores {os.cpu_count()}", flush=True)
        _time_cli(args.model, src, dst, args.workers, 0, unit_tokens * copies, size)
        print(f"output {dst.stat().st_size / 2**30:.2f} GiB of JSONL, {sum(1 for _ in dst.open('rb')):,} records")


if __name__ == "__main__":
    sys.exit(main())
