"""Peak memory of ``nertool tag`` on raw text files of growing size: streaming means the peak
does not grow with the file. Each run is a separate process; its peak RSS is read from the
kernel's accounting of a wrapper's children. Run alone on an idle machine:

    .venv/bin/python scripts/bench_stream_memory.py [MODEL] --sizes-mb 5,50
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"
SAMPLE = ROOT / "corpora" / "sample" / "sample.txt"

# runs the command with stdout to /dev/null; prints its peak RSS (KiB) and wall time as JSON
WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0,
                  "max_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def paragraphs() -> list[str]:
    """Text to repeat: CoNLL-2003 test sentences in paragraphs of 8, or the sample text."""
    if TEST.is_file():
        sys.path.insert(0, str(ROOT))
        from nertool.data.conll import read_conll

        lines = [" ".join(t) for t, _ in read_conll(TEST)]
        return [" ".join(lines[i : i + 8]) + "\n\n" for i in range(0, len(lines), 8)]
    return [SAMPLE.read_text(encoding="utf-8") + "\n"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="en")
    ap.add_argument("--sizes-mb", default="5,50")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    paras = paragraphs()
    nertool = str(Path(sys.executable).with_name("nertool"))
    for mb in (float(x) for x in args.sizes_mb.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "big.txt"
            size = 0
            with path.open("w", encoding="utf-8") as f:
                while size < mb * 2**20:
                    for p in paras:
                        f.write(p)
                        size += len(p.encode())
            cmd = [nertool, "tag", args.model, str(path), "--format", "jsonl"]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{size / 2**20:7.1f} MB raw text -> jsonl: exit {r['rc']}, {r['seconds']:.1f}s "
                  f"({size / 2**20 / r['seconds']:.2f} MB/s), peak RSS {r['max_rss_kib'] / 1024:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
