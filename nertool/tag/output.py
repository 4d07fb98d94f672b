"""Output formats for tagged documents: JSONL per sentence, JSONL per document (the spaCy /
Prodigy shape), CoNLL (input columns + predicted tag), inline markup. Every offset indexes the
document's own text. Formatting only: the tagging happens in :mod:`nertool.tag.tagger`."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

OUTPUT_FORMATS = ("jsonl", "docs", "conll", "inline", "spacy")


def _doc_ref(doc) -> dict[str, Any]:
    ref: dict[str, Any] = {"path": doc.path, "doc": doc.index}
    if doc.id is not None:
        ref["id"] = doc.id
    return ref


def _spans(doc, sent, result) -> list[dict[str, Any]]:
    text = doc.text
    return [{"text": text[sent[s].start : sent[e - 1].end], "label": label, "start": sent[s].start,
             "end": sent[e - 1].end, "score": round(p, 6)} for label, s, e, p in result.chunks]


def sentence_records(doc, results) -> Iterator[dict[str, Any]]:
    """One JSON object per sentence: the document it belongs to, its start/end in the document's
    text, tokens with offsets, tags, spans with scores (and n-best)."""
    ref = _doc_ref(doc)
    line, pos = doc.line, 0  # line numbers counted on from the previous sentence: linear in the text
    for k, (sent, r) in enumerate(zip(doc.sentences, results)):
        a, b = sent[0].start, sent[-1].end
        line += doc.text.count("\n", pos, a)
        pos = a
        rec: dict[str, Any] = {
            **ref, "sentence": doc.first_sentence + k, "line": line, "start": a, "end": b,
            "text": doc.text[a:b], "tokens": [t.text for t in sent], "offsets": [[t.start, t.end] for t in sent],
            "tags": r.tags, "spans": _spans(doc, sent, r),
        }
        if r.nbest is not None:
            rec["nbest"] = [{"tags": tags, "prob": round(p, 6)} for tags, p in r.nbest]
        if doc.extra:  # a JSONL input record's other fields, carried along
            rec["meta"] = doc.extra
        yield rec


def document_record(doc, results) -> dict[str, Any]:
    """One JSON object per document, as spaCy and Prodigy read it: text, tokens, spans (token
    ranges inclusive, as Prodigy has them), the input record's other fields."""
    tokens, spans, base = [], [], 0
    for sent, r in zip(doc.sentences, results):
        tokens.extend({"text": t.text, "start": t.start, "end": t.end, "id": base + i} for i, t in enumerate(sent))
        for span, (_, s, e, _) in zip(_spans(doc, sent, r), r.chunks):
            spans.append({**span, "token_start": base + s, "token_end": base + e - 1})
        base += len(sent)
    rec = {"text": doc.text, **doc.extra, "tokens": tokens, "spans": spans,
           "meta": {k: v for k, v in _doc_ref(doc).items()}}
    if doc.id is not None:
        rec["id"] = doc.id
    return rec


def format_jsonl(doc, results) -> bytes:
    return b"".join(orjson.dumps(rec) + b"\n" for rec in sentence_records(doc, results))


def format_docs(doc, results) -> bytes:
    if not doc.sentences and doc.docstart:  # a CoNLL input's trailing -DOCSTART-: no document
        return b""
    return orjson.dumps(document_record(doc, results)) + b"\n"


def format_conll(doc, results) -> bytes:
    """The input's columns with the tag added; a ``-DOCSTART-`` line that opened the document's
    section (CoNLL input) is written back before it, with an ``O`` column added. Columns are
    separated by spaces, or by tabs in a document where a field holds a space (as the reader
    reads them back: a line with a tab splits at tabs only)."""
    all_rows = [doc.rows[k] if doc.rows else [[t.text] for t in sent] for k, sent in enumerate(doc.sentences)]
    sep = "\t" if any(" " in f for rows in all_rows for row in rows for f in row) else " "
    out = [sep.join([*doc.docstart, "O"]) + "\n\n"] if doc.docstart else []
    for rows, r in zip(all_rows, results):
        out.append("".join(sep.join([*row, tag]) + "\n" for row, tag in zip(rows, r.tags)) + "\n")
    return "".join(out).encode("utf-8")


def format_inline(doc, results) -> bytes:
    """``[Angela Merkel](PER) met ...``: each sentence's text with its spans marked up, a line each."""
    text, out = doc.text, []
    for sent, r in zip(doc.sentences, results):
        pos, end, parts = sent[0].start, sent[-1].end, []
        for label, s, e, _ in r.chunks:
            a, b = sent[s].start, sent[e - 1].end
            parts += [text[pos:a], f"[{text[a:b]}]({label})"]
            pos = b
        parts.append(text[pos:end])
        out.append("".join(parts).replace("\n", " ") + "\n")
    return "".join(out).encode("utf-8")


# spacy: the docs records, made into one DocBin when an output is complete (:func:`docbin_from_docs`)
FORMATTERS = {"jsonl": format_jsonl, "docs": format_docs, "conll": format_conll, "inline": format_inline,
              "spacy": format_docs}
WHOLE_DOCUMENTS = frozenset({"docs", "spacy"})  # formats whose record is a whole document, never a part of one


def docbin_from_docs(data: bytes) -> bytes:
    """The ``docs`` records of one output (JSON lines) as a spaCy DocBin: a Doc per document, its
    entities the tagged spans (a DocBin keeps tokens and entities, not the spans' scores: ``--format
    docs`` has those)."""
    from nertool.data.annotations import Annotated, docbin_bytes
    from nertool.data.text import Token

    records = []
    for line in data.splitlines():
        rec = orjson.loads(line)
        tokens = [Token(t["text"], t["start"], t["end"]) for t in rec["tokens"]]
        records.append(Annotated(rec["text"], tokens, [(sp["start"], sp["end"], sp["label"]) for sp in rec["spans"]]))
    return docbin_bytes(records)


FINISHERS = {"spacy": docbin_from_docs}  # format -> what makes one output of all its records' bytes
