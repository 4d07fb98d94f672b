"""JSON serialisers on nertool's own output records: orjson (used), msgspec, the standard library.

    .venv/bin/pip install msgspec    # not a dependency: only for this comparison
    .venv/bin/python scripts/bench_json.py [--docs 2000]

Records are the JSONL records of `nertool tag en` on CoNLL-2003 test text (paragraphs of 8
sentences); each serialiser encodes the same list of records, best of 5; bytes are checked equal
after parsing back.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    args = ap.parse_args()

    import orjson

    from nertool.data.conll import read_conll
    from nertool.data.inputs import read_documents
    from nertool.tag.output import sentence_records
    from nertool.tag.tagger import Tagger

    lines = [" ".join(t) for t, _ in read_conll(TEST)]
    text = "".join(" ".join(lines[i : i + 8]) + "\n\n" for i in range(0, min(len(lines), 8 * args.docs), 8))
    docs = list(read_documents(io.BytesIO(text.encode()), "bench.txt", "text"))
    tagger = Tagger.load("en")
    records = []
    for d in docs:
        records += list(sentence_records(d, tagger.tag_sentences([[t.text for t in s] for s in d.sentences])))
    coders = {"orjson": orjson.dumps, "json (stdlib)": lambda r: json.dumps(r, ensure_ascii=False).encode()}
    try:
        import msgspec

        enc = msgspec.json.Encoder()
        coders["msgspec"] = enc.encode
    except ImportError:
        print("msgspec not installed: pip install msgspec to compare it")
    n_bytes = len(b"\n".join(orjson.dumps(r) for r in records))
    print(f"{len(records):,} records, {n_bytes / 2**20:.1f} MB of JSONL")
    for name, fn in coders.items():
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            out = [fn(r) for r in records]
            best = min(best, time.perf_counter() - t0)
        assert [json.loads(o) for o in out[:50]] == records[:50]
        print(f"{name:14s} {len(records) / best:12,.0f} records/s  {n_bytes / 2**20 / best:8.1f} MB/s")


if __name__ == "__main__":
    sys.exit(main())
