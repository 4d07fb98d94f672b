"""Reading and splitting one long line of text (no line breaks at all), as ``nertool tag`` does it
(``read_documents`` without splitting, then ``segment_documents`` in parts of 1,024 sentences):
time and peak memory for growing sizes, to show both stay linear.

    .venv/bin/python scripts/bench_long_line.py --mb 1,2,4,50
"""
from __future__ import annotations

import argparse
import io
import resource
import time

from nertool.data.inputs import read_documents, segment_documents

TEXT = "Anna Berg visited Oslo on Monday . She met Tim Cook there and they talked about the EU budget . "


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", default="1,2,4,50")
    args = ap.parse_args()
    for mb in map(float, args.mb.split(",")):
        data = (TEXT * int(mb * 2**20 / len(TEXT))).encode()
        t0 = time.perf_counter()
        sentences = tokens = 0
        docs = read_documents(io.BytesIO(data), "line.txt", "text", lang=None)
        for doc in segment_documents(docs, "en", part=1024):
            sentences += len(doc.sentences)
            tokens += sum(len(s) for s in doc.sentences)
        seconds = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{mb:g} MB in one line: {sentences:,} sentences, {tokens:,} tokens in {seconds:.2f} s "
              f"({mb / seconds:.2f} MB/s); peak RSS so far {rss:,.0f} MB", flush=True)


if __name__ == "__main__":
    main()
