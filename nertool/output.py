"""Output formats for tagged sentences: JSONL, CoNLL (input columns + predicted tag), inline."""
from __future__ import annotations

import json
from typing import Any

OUTPUT_FORMATS = ("jsonl", "conll", "inline")


def sentence_record(unit, result) -> dict[str, Any]:
    """The JSON object of one tagged sentence; span offsets index ``text``."""
    toks = unit.tokens
    rec: dict[str, Any] = {
        "line": unit.line,
        "text": unit.text,
        "tokens": [t.text for t in toks],
        "offsets": [[t.start, t.end] for t in toks],
        "tags": result.tags,
        "spans": [
            {"text": unit.text[toks[s].start : toks[e - 1].end], "label": label, "start": toks[s].start,
             "end": toks[e - 1].end, "score": round(p, 6)}
            for label, s, e, p in result.chunks
        ],
    }
    if result.nbest is not None:
        rec["nbest"] = [{"tags": tags, "prob": round(p, 6)} for tags, p in result.nbest]
    return rec


def format_jsonl(unit, result) -> str:
    return json.dumps(sentence_record(unit, result), ensure_ascii=False) + "\n"


def format_conll(unit, result) -> str:
    rows = unit.rows or [[t.text] for t in unit.tokens]
    return "".join(" ".join([*r, tag]) + "\n" for r, tag in zip(rows, result.tags)) + "\n"


def format_inline(unit, result) -> str:
    """``[Angela Merkel](PER) met ...``: the sentence text with each span marked up."""
    text, toks = unit.text, unit.tokens
    out, pos = [], 0
    for label, s, e, _ in result.chunks:
        a, b = toks[s].start, toks[e - 1].end
        out.append(text[pos:a])
        out.append(f"[{text[a:b]}]({label})")
        pos = b
    out.append(text[pos:])
    return "".join(out).replace("\n", " ") + "\n"


FORMATTERS = {"jsonl": format_jsonl, "conll": format_conll, "inline": format_inline}


def render(tagger, units, fmt: str = "jsonl", nbest: int = 0, batch_size: int = 256, scores: bool = True):
    """Tag a stream of :class:`~nertool.inputs.Unit` in batches; yields ``(unit, text)`` pairs in
    input order, ``text`` formatted in ``fmt``."""
    from itertools import islice

    if fmt not in FORMATTERS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    fmt_fn = FORMATTERS[fmt]
    it = iter(units)
    while True:
        chunk = list(islice(it, batch_size * 4))
        if not chunk:
            return
        results = tagger.tag_sentences([[t.text for t in u.tokens] for u in chunk], nbest=nbest, scores=scores)
        for u, r in zip(chunk, results):
            yield u, fmt_fn(u, r)
