"""Annotation tools' span formats <-> one record type, aligned to tokens.

Formats: ``prodigy`` (JSONL: ``text``, ``tokens``, ``spans`` of ``start``/``end``/``label``,
``answer``), ``doccano`` (JSONL: ``text``, ``label`` as ``[[start, end, type]]``, or ``entities``
with ``start_offset``/``end_offset``/``label``), ``labelstudio`` (a JSON list of tasks: ``data.text``
and ``annotations[].result[].value`` with ``start``/``end``/``labels``; ``predictions`` when there is
no annotation), ``argilla`` (JSONL of token-classification records: ``text``, ``tokens``,
``annotation`` as ``[[label, start, end]]``), ``conll`` (a token and its IOB2 tag per line) and
``spacy`` (a spaCy ``DocBin``, ``.spacy``: each doc's tokens and ``doc.ents``; one record per
sentence where the docs have sentence boundaries).

Character spans are aligned to tokens (the record's own tokens when it has them, else nertool's
tokenizer): a span that does not start and end on token boundaries is an error naming the file and
line, never moved silently. Prodigy tasks answered ``reject`` or ``ignore`` are left out and counted.

``prodigy-binary`` reads Prodigy's binary answers (``ner.teach``: one suggested span a task,
accepted or rejected) as partial annotations: the accepted spans of all tasks on one text are
known, every other token's tag is unknown (``?``, trained with the partial likelihood), so an
unchecked token never teaches "O". A rejected suggestion is left out and counted (it says what a
span is not, which a tag sequence cannot hold). Such records are written as one accepted task a
span (``prodigy-binary``) or as CoNLL with ``?`` tags; the other formats would state the unknown
tokens as "O" and are refused.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nertool.data.text import Token, tokenize
from nertool.errors import DataFormatError, NertoolError

FORMATS = ("prodigy", "prodigy-binary", "doccano", "labelstudio", "argilla", "conll", "spacy")


@dataclass
class Annotated:
    """A text, its tokens, and its labelled spans (character offsets, end exclusive)."""

    text: str
    tokens: list[Token]
    spans: list[tuple[int, int, str]]
    line: int = 0  # where it was read (1-based; for messages)
    meta: dict[str, Any] = field(default_factory=dict)
    partial: bool = False  # only the spans are known: the other tokens' tags are unknown (?)

    def tags(self) -> list[str]:
        """IOB2 tags of the tokens (``?`` outside the spans of a partial record)."""
        from nertool.data.tags import UNKNOWN

        tags = [UNKNOWN if self.partial else "O"] * len(self.tokens)
        starts = {t.start: i for i, t in enumerate(self.tokens)}
        ends = {t.end: i for i, t in enumerate(self.tokens)}
        for a, b, label in self.spans:
            i, j = starts[a], ends[b]
            tags[i] = f"B-{label}"
            for k in range(i + 1, j + 1):
                tags[k] = f"I-{label}"
        return tags


def guess_format(path: str | Path) -> str:
    """The format of ``path`` from its content: a JSON list is Label Studio; JSONL records tell
    by their keys; a ``.spacy`` file is a DocBin; anything else is CoNLL. Ambiguous content raises,
    asking for ``--from``."""
    if str(path).lower().endswith(".spacy"):
        return "spacy"
    with open(path, encoding="utf-8") as f:
        head = f.read(1 << 16).lstrip()
    if head.startswith("["):
        return "labelstudio"
    if not head.startswith("{"):
        return "conll"
    first = json.loads(head.splitlines()[0])
    for key, fmt in (("annotation", "argilla"), ("label", "doccano"), ("entities", "doccano"), ("spans", "prodigy")):
        if key in first:
            return fmt
    raise NertoolError(f"{path}: cannot tell the format from its first record's keys ({', '.join(first)}); give --from")


def read(path: str | Path, fmt: str = "auto", lang: str = "en") -> tuple[list[Annotated], int]:
    """The records of ``path`` and how many were left out (rejected or ignored Prodigy tasks)."""
    fmt = guess_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise NertoolError(f"unknown annotation format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "conll":
        return list(_read_conll(path)), 0
    if fmt == "spacy":
        return [_aligned(path, n, text, tokens, spans, lang) for n, text, tokens, spans in _read_docbin(path)], 0
    if fmt == "labelstudio":
        return [_aligned(path, i + 1, *_labelstudio(path, i + 1, task), lang) for i, task in enumerate(_json_list(path))], 0
    out, skipped = [], 0
    by_text: dict[str, Annotated] = {}  # prodigy-binary: one record a text, its accepted spans merged
    read_one = {"prodigy": _prodigy, "prodigy-binary": _prodigy, "doccano": _doccano, "argilla": _argilla}[fmt]
    for line, rec in _jsonl(path):
        if fmt.startswith("prodigy") and rec.get("answer", "accept") != "accept":
            skipped += 1
            continue
        r = _aligned(path, line, *read_one(path, line, rec), lang)
        if fmt != "prodigy-binary":
            out.append(r)
            continue
        r.partial = True
        seen = by_text.get(r.text)
        if seen is None:
            by_text[r.text] = r
            out.append(r)
            continue
        for span in r.spans:
            _merge_span(path, line, seen, span)
    return out, skipped


def _merge_span(path, line: int, record: Annotated, span: tuple[int, int, str]) -> None:
    """Adds an accepted span of a later task on the same text; one that overlaps another with a
    different extent or label is a contradiction, named with its line."""
    a, b, label = span
    for c, d, other in record.spans:
        if (c, d, other) == span:
            return
        if a < d and c < b:
            raise DataFormatError(str(path), line, f"accepted span [{a}, {b}) {label} overlaps the accepted span "
                                                   f"[{c}, {d}) {other} of an earlier task on the same text")
    record.spans = sorted([*record.spans, span])


def write(path: str | Path, records: Iterable[Annotated], fmt: str) -> None:
    """``records`` in ``fmt`` at ``path`` (written aside, then renamed into place)."""
    from nertool.fileio import atomic_write

    if fmt not in FORMATS:
        raise NertoolError(f"unknown annotation format {fmt!r}; expected one of {', '.join(FORMATS)}")
    records = list(records)
    if fmt not in ("prodigy-binary", "conll") and any(r.partial for r in records):
        raise NertoolError(f"partial annotations (only some spans known) cannot be written as {fmt}, which would "
                           "state every other token as outside any span; write prodigy-binary or conll (? tags)")
    if fmt == "spacy":
        from nertool.fileio import atomic_write_bytes

        atomic_write_bytes(path, docbin_bytes(records))
        return
    with atomic_write(path) as f:
        if fmt == "labelstudio":
            json.dump([_to_labelstudio(r) for r in records], f, ensure_ascii=False, indent=1)
            f.write("\n")
            return
        for r in records:
            if fmt == "conll":
                f.write("".join(f"{t.text} {tag}\n" for t, tag in zip(r.tokens, r.tags())) + "\n")
            elif fmt == "prodigy-binary":  # one accepted task a span
                task = _to_prodigy(r)
                for span in task.pop("spans"):
                    f.write(json.dumps({**task, "spans": [span]}, ensure_ascii=False) + "\n")
            else:
                f.write(json.dumps({"prodigy": _to_prodigy, "doccano": _to_doccano, "argilla": _to_argilla}[fmt](r),
                                   ensure_ascii=False) + "\n")


# -- readers --------------------------------------------------------------------------------
def _jsonl(path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for line, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError as e:
                raise DataFormatError(str(path), line, f"not JSON ({e})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                raise DataFormatError(str(path), line, "expected a JSON object with a \"text\" string")
            yield line, rec


def _json_list(path) -> list:
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataFormatError(str(path), None, f"not JSON ({e})") from None
    if not isinstance(tasks, list):
        raise DataFormatError(str(path), None, "expected a JSON list of Label Studio tasks")
    return tasks


def _prodigy(path, line, rec):
    tokens = [Token(t["text"], t["start"], t["end"]) for t in rec["tokens"]] if rec.get("tokens") else None
    return rec["text"], tokens, [(s["start"], s["end"], s["label"]) for s in rec.get("spans") or []]


def _doccano(path, line, rec):
    if "entities" in rec:
        spans = [(e["start_offset"], e["end_offset"], e["label"]) for e in rec["entities"]]
    else:
        spans = [(s, e, label) for s, e, label in rec.get("label") or []]
    return rec["text"], None, spans


def _argilla(path, line, rec):
    text = rec["text"]
    tokens = None
    if rec.get("tokens"):  # Argilla keeps the token strings; their offsets are found in the text
        tokens, pos = [], 0
        for word in rec["tokens"]:
            a = text.find(word, pos)
            if a < 0:
                raise DataFormatError(str(path), line, f"token {word!r} is not in the text after offset {pos}")
            tokens.append(Token(word, a, a + len(word)))
            pos = a + len(word)
    return text, tokens, [(s, e, label) for label, s, e, *_ in rec.get("annotation") or []]


def _labelstudio(path, number: int, task: dict):
    text = (task.get("data") or {}).get("text") if isinstance(task, dict) else None
    if not isinstance(text, str):
        raise DataFormatError(str(path), None, f"task {number}: a Label Studio task without data.text")
    results = next((a.get("result") for a in task.get("annotations") or [] if not a.get("was_cancelled")), None)
    if results is None:
        results = next((p.get("result") for p in task.get("predictions") or []), [])
    spans = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in results
             if r.get("type", "labels") == "labels" and r.get("value", {}).get("labels")]
    return text, None, spans


def _read_conll(path) -> Iterator[Annotated]:
    from nertool.data.conll import read_conll
    from nertool.data.inputs import joined
    from nertool.data.tags import chunks, detect_scheme

    sentences = read_conll(path)
    scheme = detect_scheme([tags for _, tags in sentences])
    for toks, tags in sentences:
        text, tokens = joined(toks)
        spans = [(tokens[s].start, tokens[e - 1].end, label) for label, s, e in chunks(tags, scheme)]
        yield Annotated(text, tokens, spans)


def _spacy():
    try:
        import spacy
        from spacy.tokens import DocBin
    except ImportError:
        raise NertoolError("spaCy DocBin files need spaCy: pip install 'nertool[spacy]'") from None
    return spacy, DocBin


def _read_docbin(path) -> Iterator[tuple[int, str, list[Token], list[tuple[int, int, str]]]]:
    """(doc or sentence number, text, tokens, entity spans) of a DocBin, white-space tokens left out."""
    spacy, DocBin = _spacy()
    try:
        docs = DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab)
        number = 0
        for doc in docs:
            parts = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
            for part in parts:
                number += 1
                a = part.start_char
                tokens = [Token(t.text, t.idx - a, t.idx - a + len(t.text)) for t in part if not t.is_space]
                spans = [(e.start_char - a, e.end_char - a, e.label_) for e in doc.ents
                         if e.start >= part.start and e.end <= part.end]
                yield number, part.text, tokens, spans
    except (ValueError, KeyError, TypeError, OSError) as e:  # msgpack/zlib errors of a file that is no DocBin
        raise DataFormatError(str(path), None, f"not a readable spaCy DocBin ({type(e).__name__}: {str(e)[:80]})") from None


def docbin_bytes(records: Iterable[Annotated]) -> bytes:
    """``records`` as a spaCy DocBin: one Doc each, its words the record's tokens (a space after a
    token where the text has white space), its entities the record's spans."""
    spacy, DocBin = _spacy()
    from spacy.tokens import Doc

    vocab = spacy.blank("xx").vocab
    out = DocBin(attrs=["ENT_IOB", "ENT_TYPE"], store_user_data=False)
    for r in records:
        toks = r.tokens
        spaces = [(toks[i + 1].start if i + 1 < len(toks) else len(r.text)) > t.end for i, t in enumerate(toks)]
        doc = Doc(vocab, words=[t.text for t in toks], spaces=spaces)
        first = {t.start: i for i, t in enumerate(toks)}
        last = {t.end: i for i, t in enumerate(toks)}
        doc.ents = [doc.char_span(doc[first[a]].idx, doc[last[b]].idx + len(doc[last[b]]), label=label)
                    for a, b, label in r.spans]
        out.add(doc)
    return out.to_bytes()


def _aligned(path, line: int, text: str, tokens: list[Token] | None, spans, lang: str) -> Annotated:
    tokens = tokens if tokens is not None else tokenize(text, lang=lang)
    starts, ends = {t.start for t in tokens}, {t.end for t in tokens}
    for a, b, label in spans:
        if not (isinstance(a, int) and isinstance(b, int) and 0 <= a < b <= len(text)):
            raise DataFormatError(str(path), line, f"span {[a, b, label]} is not inside the text")
        if a not in starts or b not in ends:
            raise DataFormatError(str(path), line, f"span [{a}, {b}) {text[a:b]!r} ({label}) does not fall on token "
                                                   "boundaries; fix the span or give the record's tokens")
    return Annotated(text, tokens, sorted(spans), line)


# -- writers --------------------------------------------------------------------------------
def _to_prodigy(r: Annotated) -> dict:
    index = {t.start: i for i, t in enumerate(r.tokens)}
    ends = {t.end: i for i, t in enumerate(r.tokens)}
    return {"text": r.text, "tokens": [{"text": t.text, "start": t.start, "end": t.end, "id": i}
                                       for i, t in enumerate(r.tokens)],
            "spans": [{"start": a, "end": b, "label": label, "token_start": index[a], "token_end": ends[b]}
                      for a, b, label in r.spans], "answer": "accept"}


def _to_doccano(r: Annotated) -> dict:
    return {"text": r.text, "label": [[a, b, label] for a, b, label in r.spans]}


def _to_argilla(r: Annotated) -> dict:
    return {"text": r.text, "tokens": [t.text for t in r.tokens], "annotation": [[label, a, b] for a, b, label in r.spans]}


def _to_labelstudio(r: Annotated) -> dict:
    return {"data": {"text": r.text}, "annotations": [{"result": [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": a, "end": b, "text": r.text[a:b], "labels": [label]}} for a, b, label in r.spans]}]}
