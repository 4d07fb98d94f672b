"""Sentence splitters compared on corpora/segmentation/passages.jsonl (hand-made passages with
their true sentence boundaries): boundary precision, recall, F1, passages split exactly right,
and characters/s on the passages repeated into a larger text.

    .venv/bin/python scripts/bench_segmentation.py [--candidates nertool,pysbd,syntok,sentencex]

pysbd, syntok and sentencex are installed on demand by this script's user (pip install ...).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSAGES = ROOT / "corpora" / "segmentation" / "passages.jsonl"


def starts_from_strings(text: str, sents: list[str]) -> list[int]:
    """Start offsets of ``sents`` found in order in ``text``."""
    out, pos = [], 0
    for s in sents:
        s = s.strip()
        if not s:
            continue
        i = text.find(s, pos)
        if i < 0:
            i = text.find(s[:10], pos)
        out.append(max(i, pos))
        pos = max(i, pos) + len(s)
    return out


def splitter(name: str, lang: str):
    """A function text -> sentence start offsets."""
    if name == "old":  # the rule-based splitter nertool used before (kept here for comparison)
        from nertool.data.text import tokenize

        return lambda text: [s[0].start for s in _old_split(tokenize(text))]
    if name == "nertool":
        from nertool.data.segment import sentence_spans

        return lambda text: [a for a, _ in sentence_spans(text, lang)]
    if name == "pysbd":
        import pysbd

        seg = pysbd.Segmenter(language=lang, clean=False, char_span=True)
        return lambda text: [s.start for s in seg.segment(text)]
    if name == "syntok":
        from syntok import segmenter

        return lambda text: [sent[0].offset for para in segmenter.analyze(text) for sent in para if sent]
    if name == "sentencex":
        from sentencex import segment

        return lambda text: starts_from_strings(text, list(segment(lang, text)))
    raise SystemExit(f"unknown candidate {name}")


def _old_split(tokens):
    enders, closers = {".", "!", "?", "…"}, {'"', "'", "”", "’", ")", "]", "»"}
    sents, cur = [], []
    for i, tok in enumerate(tokens):
        cur.append(tok)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is None:
            break
        attached = nxt.start == tok.end
        if tok.text in closers and len(cur) > 1 and cur[-2].text in enders and cur[-2].end == tok.start:
            end_here = True
        else:
            end_here = tok.text in enders and not (nxt.text in closers and attached)
        if end_here and (nxt.text[:1].isupper() or nxt.text[:1].isdigit() or nxt.text[:1] in "\"'“‘(«"):
            sents.append(cur)
            cur = []
    if cur:
        sents.append(cur)
    return sents


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", default="old,nertool,pysbd,syntok,sentencex")
    ap.add_argument("--speed-chars", type=int, default=2_000_000)
    args = ap.parse_args()
    rows = [json.loads(l) for l in PASSAGES.read_text(encoding="utf-8").splitlines()]
    print(f"{len(rows)} passages ({sum(r['lang'] == 'en' for r in rows)} English), "
          f"{sum(len(r['sentences']) - 1 for r in rows)} true boundaries")
    print(f"{'splitter':<10} {'lang':<5} {'P':>6} {'R':>6} {'F1':>6} {'exact':>7} {'chars/s':>12}")
    for name in args.candidates.split(","):
        for langs in (("en",), ("es", "nl", "de")):
            tp = fp = fn = exact = n = 0
            for r in rows:
                if r["lang"] not in langs:
                    continue
                text = " ".join(r["sentences"])
                gold, pos = set(), 0
                for s in r["sentences"][:-1]:
                    pos += len(s) + 1
                    gold.add(pos)
                pred = {b for b in splitter(name, r["lang"])(text) if b > 0}
                tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
                exact += pred == gold
                n += 1
            p, rc = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
            speed = ""
            if langs == ("en",):
                big = " ".join(" ".join(r["sentences"]) for r in rows if r["lang"] == "en")
                big = (big + " ") * (args.speed_chars // len(big) + 1)
                # paragraphs of about 2,000 characters, each made unique (no splitter may cache)
                big = "\n\n".join(f"Part {i}. " + big[i:i + 2000] for i in range(0, len(big), 2000))
                fn_ = splitter(name, "en")
                t0 = time.perf_counter()
                for para in big.split("\n\n"):
                    fn_(para)
                speed = f"{len(big) / (time.perf_counter() - t0):,.0f}"
            print(f"{name:<10} {'/'.join(langs):<5} {100 * p:6.1f} {100 * rc:6.1f} {200 * p * rc / max(p + rc, 1e-9):6.1f} "
                  f"{exact:>3}/{n:<3} {speed:>12}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
