"""Streaming input for tagging: raw text, lines, pre-tokenised lines or CoNLL, as sentences
(units) that remember their source line and their text, with token offsets into that text."""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .conll import check_column, parse_columns
from .errors import BadLines, DataFormatError, NertoolError
from .text import Token, split_sentences, tokenize

INPUT_FORMATS = ("text", "lines", "tokens", "conll")


@dataclass
class Unit:
    """One sentence to tag. ``tokens`` offsets index ``text``; ``rows`` keeps CoNLL columns."""

    line: int
    text: str
    tokens: list[Token]
    rows: list[list[str]] = field(default_factory=list)


def _lines(stream: BinaryIO, name: str, encoding: str, bad: BadLines) -> Iterator[tuple[int, str]]:
    for lineno, raw in enumerate(stream, 1):
        if b"\x00" in raw:
            bad.handle(DataFormatError(name, lineno, "line is not text (NUL byte found)"))
            continue
        try:
            line = raw.decode(encoding).rstrip("\r\n")
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


def read_units(
    stream: BinaryIO, name: str, fmt: str = "text", encoding: str = "utf-8", token_column: int = 0, bad: BadLines | None = None
) -> Iterator[Unit]:
    """Sentences of an input stream in one of :data:`INPUT_FORMATS`. Bad lines raise
    DataFormatError naming the line, or are skipped and counted in ``bad`` when it says so."""
    if fmt not in INPUT_FORMATS:
        raise NertoolError(f"unknown input format {fmt!r}; expected one of {', '.join(INPUT_FORMATS)}")
    bad = bad or BadLines()
    lines = _lines(stream, name, encoding, bad)
    if fmt == "text":
        yield from _text_units(lines)
    elif fmt == "lines":
        for lineno, line in lines:
            toks = tokenize(line)
            if toks:
                yield Unit(lineno, line, toks)
    elif fmt == "tokens":
        for lineno, line in lines:
            words = line.split()
            if words:
                yield _joined(lineno, words)
    else:
        yield from _conll_units(lines, name, token_column, bad)


def _text_units(lines: Iterable[tuple[int, str]]) -> Iterator[Unit]:
    para: list[str] = []
    first = 0
    for lineno, line in lines:
        if line.strip():
            if not para:
                first = lineno
            para.append(line)
            continue
        if para:
            yield from _paragraph(first, "\n".join(para))
            para = []
    if para:
        yield from _paragraph(first, "\n".join(para))


def _paragraph(first_line: int, text: str) -> Iterator[Unit]:
    for sent in split_sentences(tokenize(text), text):
        a, b = sent[0].start, sent[-1].end
        line = first_line + text.count("\n", 0, a)
        yield Unit(line, text[a:b], [Token(t.text, t.start - a, t.end - a) for t in sent])


def _joined(lineno: int, words: list[str], rows: list[list[str]] | None = None) -> Unit:
    tokens, pos = [], 0
    for w in words:
        tokens.append(Token(w, pos, pos + len(w)))
        pos += len(w) + 1
    return Unit(lineno, " ".join(words), tokens, rows or [])


def _conll_units(lines: Iterable[tuple[int, str]], name: str, token_column: int, bad: BadLines) -> Iterator[Unit]:
    for i, rows in enumerate(parse_columns(lines, name, bad)):
        if i == 0:
            check_column(name, rows[0], token_column, "token")
        fields = [f for _, f in rows]
        yield _joined(rows[0][0], [f[token_column] for f in fields], fields)
