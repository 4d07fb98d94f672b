"""Streaming input for tagging: documents of raw text, lines, pre-tokenised lines, CoNLL columns
or JSONL records, each split into sentences whose token offsets index the document's own text.

What a document is, by input format: ``text``, a paragraph (lines up to a blank line, joined by
``\\n``); ``lines`` and ``tokens``, a line; ``conll``, a sentence block (its ``group`` is its
``-DOCSTART-`` section, the document that document context uses); ``jsonl``, a record
(``{"text": ..., "id": ...}``; other fields travel to the output).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from nertool.data.conll import check_column, parse_columns
from nertool.data.segment import iter_sentence_spans, sentence_spans, sentence_tokens
from nertool.data.segment import sentences as split_text
from nertool.data.text import Token
from nertool.errors import BadLines, DataFormatError, NertoolError
from nertool.fileio import clean_line

INPUT_FORMATS = ("auto", "text", "lines", "tokens", "conll", "jsonl")
SUFFIX_FORMATS = {".txt": "text", ".text": "text", ".conll": "conll", ".iob": "conll", ".bio": "conll",
                  ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class Document:
    """One document to tag. Token offsets of ``sentences`` index ``text``; ``rows`` keeps the CoNLL
    columns of each sentence; ``extra`` the other fields of a JSONL record."""

    path: str
    index: int  # 0-based position in its input
    line: int  # 1-based line of the input where it starts
    text: str
    sentences: list[list[Token]] | None  # None: not split yet (see :func:`segment_documents`)
    id: Any = None  # the JSONL record's id, when it has one
    rows: list[list[list[str]]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    first_sentence: int = 0  # in a part of a long document: the number of its first sentence
    group: int | None = None  # CoNLL input: its -DOCSTART- section (one document for document context)
    docstart: list[str] | None = None  # CoNLL input: the fields of the -DOCSTART- line that opens its section


def _lines(stream: BinaryIO, name: str, encoding: str, bad: BadLines, keep_cr: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, line) without its line end; with ``keep_cr`` a CRLF line keeps its ``\\r``, so
    that a paragraph of raw text is the file's text and offsets into it are offsets into the file."""
    end = "\n" if keep_cr else "\r\n"
    for lineno, raw in enumerate(stream, 1):
        if b"\x00" in raw:
            bad.handle(DataFormatError(name, lineno, "line is not text (NUL byte found)"))
            continue
        try:
            line = clean_line(raw.decode(encoding).rstrip(end))
        except UnicodeDecodeError:
            bad.handle(DataFormatError(name, lineno, f"line is not valid {encoding}; try --encoding latin-1"))
            continue
        yield lineno, line


def open_input(path: str) -> tuple[BinaryIO, str, int]:
    """(binary stream, display name, size in bytes or 0) for a path or ``-`` (stdin)."""
    if path == "-":
        return sys.stdin.buffer, "<stdin>", 0
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(path, None, "no such file" if not p.exists() else "not a file")
    return p.open("rb"), path, p.stat().st_size


def detect_format(name: str, fmt: str = "auto") -> str:
    """The input format: ``fmt`` unless ``auto``, else from the file's suffix (text by default)."""
    if fmt != "auto":
        return fmt
    return SUFFIX_FORMATS.get(Path(name).suffix.lower(), "text")


def looks_like_conll(lines: list[str]) -> bool:
    """True when the first non-blank lines look like CoNLL columns (2+ columns, the same number on
    every line, the last one a tag such as O or B-PER)."""
    rows = [l.split() for l in lines if l.strip()][:20]
    if len(rows) < 3 or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        return False
    return all(r[-1] == "O" or (len(r[-1]) > 2 and r[-1][1] == "-" and r[-1][0] in "BIESLU") for r in rows)


def read_documents(
    stream: BinaryIO, name: str, fmt: str = "text", encoding: str = "utf-8", token_column: int = 0,
    bad: BadLines | None = None, lang: str | None = "en",
) -> Iterator[Document]:
    """Documents of an input stream in one of :data:`INPUT_FORMATS` (``auto``: by suffix). Bad lines
    raise DataFormatError naming the line, or are skipped and counted in ``bad`` when it says so.
    With ``lang=None`` raw text is not split into sentences here (``sentences`` is None): a worker
    does it later with :func:`segment_documents`."""
    fmt = detect_format(name, fmt)
    if fmt not in INPUT_FORMATS:
        raise NertoolError(f"unknown input format {fmt!r}; expected one of {', '.join(INPUT_FORMATS)}")
    try:
        "".encode(encoding)
    except LookupError:
        raise NertoolError(f"unknown encoding {encoding!r}") from None
    bad = bad or BadLines()
    lines = _lines(stream, name, encoding, bad, keep_cr=fmt == "text")
    if fmt == "text":
        yield from _text_documents(lines, name, lang)
    elif fmt == "lines":
        for i, (lineno, line) in enumerate((n, l) for n, l in lines if l.strip()):
            yield Document(name, i, lineno, line, _split(line, lang))
    elif fmt == "tokens":
        for i, (lineno, line) in enumerate((n, l) for n, l in lines if l.split()):
            text, toks = joined(line.split())
            yield Document(name, i, lineno, text, [toks])
    elif fmt == "jsonl":
        yield from _jsonl_documents(lines, name, bad, lang)
    else:
        yield from _conll_documents(lines, name, bad, token_column)


def _conll_documents(lines: Iterable[tuple[int, str]], name: str, bad: BadLines, token_column: int) -> Iterator[Document]:
    """A document per sentence of a CoNLL input, each knowing its ``-DOCSTART-`` section."""
    sections: list = [0, None, 0]  # -DOCSTART- lines read so far, the fields and line of the latest

    def opened(lineno: int, fields: list[str]) -> None:
        sections[:] = [sections[0] + 1, fields, lineno]

    group = i = 0
    for i, rows in enumerate(parse_columns(lines, name, bad, docstart=opened), 1):
        if i == 1:
            check_column(name, rows[0], token_column, "token")
        fields = [f for _, f in rows]
        text, toks = joined([f[token_column] for f in fields])
        first, group = group, sections[0]
        yield Document(name, i - 1, rows[0][0], text, [toks], rows=[fields], group=group,
                       docstart=sections[1] if group != first else None)
    if sections[0] != group:  # a -DOCSTART- after the last sentence: kept for the CoNLL output
        yield Document(name, i, sections[2], "", [], rows=[], group=sections[0], docstart=sections[1])


def _split(text: str, lang: str | None) -> list[list[Token]] | None:
    return None if lang is None else split_text(text, lang)


def segment_documents(docs: Iterable[Document], lang: str = "en", part: int = 0) -> Iterator[Document]:
    """``docs`` with the sentences of those not split yet filled in. With ``part`` > 0, a document
    of more sentences is yielded in parts of ``part`` sentences (see ``Document.first_sentence``);
    one split here is tokenised a part at a time as the parts are consumed, so a long paragraph
    is never held as tokens whole."""
    for d in docs:
        if d.sentences is None:
            yield from _split_parts(d, lang, part)
        elif part and len(d.sentences) > part:
            for s in range(0, len(d.sentences), part):
                yield dataclasses.replace(d, sentences=d.sentences[s : s + part], rows=d.rows[s : s + part],
                                          first_sentence=d.first_sentence + s)
        else:
            yield d


def _split_parts(d: Document, lang: str, part: int) -> Iterator[Document]:
    """``d`` split into sentences: whole, or (``part`` > 0) in parts of ``part`` sentences, found
    a window of text at a time, so that a long paragraph's boundaries are never all held."""
    where = f"{d.path}:{d.line}"
    spans = iter_sentence_spans(d.text, lang, where) if part else iter(sentence_spans(d.text, lang, where))
    groups = iter(lambda: list(itertools.islice(spans, part or None)), [])
    first = next(groups, [])
    later = next(groups, None)
    if later is None:
        d.sentences = [t for a, e in first if (t := sentence_tokens(d.text, a, e, lang))]
        yield d
        return
    s = 0
    for group in itertools.chain([first, later], groups):
        yield dataclasses.replace(d, sentences=[t for a, e in group if (t := sentence_tokens(d.text, a, e, lang))],
                                  first_sentence=s)
        s += len(group)


def _text_documents(lines: Iterable[tuple[int, str]], name: str, lang: str | None) -> Iterator[Document]:
    para: list[str] = []
    first = index = 0
    head: list[str] = []
    for lineno, line in lines:
        if len(head) < 20:
            head.append(line)
            if len(head) == 20:
                _warn_if_conll(name, head)
        if line.strip():
            if not para:
                first = lineno
            para.append(line)
            continue
        if para:
            yield _paragraph(name, index, first, _joined_lines(para), lang)
            index += 1
            para = []
    if len(head) < 20:
        _warn_if_conll(name, head)
    if para:
        yield _paragraph(name, index, first, _joined_lines(para), lang)


def _joined_lines(para: list[str]) -> str:
    """A paragraph's text as the file has it: its lines with their own ends (``\\n`` or ``\\r\\n``),
    but not the last line's."""
    text = "\n".join(para)
    return text[:-1] if text.endswith("\r") else text


def _warn_if_conll(name: str, head: list[str]) -> None:
    if looks_like_conll(head):
        warnings.warn(f"{name}: looks like CoNLL columns; tagging it as text (use --input-format conll)", UserWarning, stacklevel=3)


def _paragraph(name: str, index: int, first_line: int, text: str, lang: str | None) -> Document:
    return Document(name, index, first_line, text, _split(text, lang))


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:30]} is out of range; write it as a string")
    return value


def _writable_int(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"the integer {text[:30]} is too large for JSON output; write it as a string")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def _jsonl_documents(lines: Iterable[tuple[int, str]], name: str, bad: BadLines, lang: str | None) -> Iterator[Document]:
    index = 0
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line, parse_float=_finite_float, parse_int=_writable_int, parse_constant=_no_constant)
        except ValueError as e:
            bad.handle(DataFormatError(name, lineno, f"bad JSON record ({e})"))
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            bad.handle(DataFormatError(name, lineno, 'expected a JSON object with a "text" string'))
            continue
        try:
            orjson.dumps(rec)  # what cannot be written back (a lone surrogate, say) stops here, named
        except TypeError as e:
            bad.handle(DataFormatError(name, lineno, f"a value cannot be written back as JSON ({e})"))
            continue
        text = rec.pop("text")
        rid = rec.pop("id", None)
        yield Document(name, index, lineno, text, _split(text, lang), id=rid, extra=rec)
        index += 1


def joined(words: list[str]) -> tuple[str, list[Token]]:
    """Pre-tokenised words as a text (joined by single spaces) and their tokens with offsets into it."""
    tokens, pos = [], 0
    for w in words:
        tokens.append(Token(w, pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), tokens


def chunked(docs: Iterable[Document], limit: int, size: Callable[[Document], int]) -> Iterator[list[Document]]:
    """Consecutive documents grouped into lists whose ``size`` (characters, sentences...) adds up
    to at least ``limit`` (the last list may be smaller)."""
    chunk: list[Document] = []
    n = 0
    for d in docs:
        chunk.append(d)
        n += size(d)
        if n >= limit:
            yield chunk
            chunk, n = [], 0
    if chunk:
        yield chunk
