"""Raw text -> sentences with exact character offsets, by ``sentencex`` (a maintained
rule-based segmenter in Rust with abbreviation lists for some 300 languages; chosen over pysbd,
syntok and nertool's former rules on corpora/segmentation, see BENCHMARKS.md)."""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

from sentencex import get_sentence_boundaries

from nertool.data.text import Token, tokenize

# non-ASCII white space (no-break space, thin space, NEL, line and paragraph separators...): the
# segmenter panics on some of them before a full stop ("not a char boundary"); it is given plain
# spaces instead, one code point for one, so its offsets still index the original text
_WIDE_SPACE = re.compile("[" + "".join(chr(cp) for cp in range(0x80, 0x3001) if chr(cp).isspace()) + "]")
_FALLBACK_END = re.compile(r"[.!?]+[\"')\]]*\s+")


def sentence_spans(text: str, lang: str = "en", where: str | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (code-point offsets, surrounding whitespace
    excluded; sentences holding only whitespace are dropped). Should the segmenter fail on a text,
    it is split at sentence-final punctuation instead, with a warning naming ``where``."""
    plain = text if text.isascii() else _WIDE_SPACE.sub(" ", text)
    try:
        bounds = [(b["start_index"], b["end_index"]) for b in get_sentence_boundaries(lang, plain)]
    except BaseException as e:  # the segmenter's Rust panics arrive as BaseException subclasses
        if isinstance(e, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        bounds = _fallback(text, where, e)
    out = []
    for a, e in bounds:
        chunk = text[a:e]
        stripped = chunk.strip()
        if stripped:
            a += len(chunk) - len(chunk.lstrip())
            out.append((a, a + len(stripped)))
    return out


WINDOW = 1 << 20  # characters of a long text the segmenter sees at a time


def iter_sentence_spans(text: str, lang: str = "en", where: str | None = None,
                        window: int = WINDOW) -> Iterator[tuple[int, int]]:
    """:func:`sentence_spans` of ``text``, found a window at a time: each window's last sentence
    (perhaps cut by the window's end) is found again at the start of the next, so a text of any
    length needs the boundaries of one window at a time, not of all of it."""
    pos, n = 0, len(text)
    while pos < n:
        if pos + window >= n:
            yield from ((a + pos, e + pos) for a, e in sentence_spans(text[pos:], lang, where))
            return
        spans = sentence_spans(text[pos : pos + window], lang, where)
        if len(spans) < 2:  # one sentence longer than the window: look further
            window *= 2
            continue
        yield from ((a + pos, e + pos) for a, e in spans[:-1])
        pos += spans[-1][0]


def _fallback(text: str, where: str | None, error: BaseException) -> list[tuple[int, int]]:
    warnings.warn(f"{where or 'text'}: the sentence segmenter failed ({str(error).splitlines()[0][:80]}); "
                  "split at sentence-final punctuation instead", UserWarning, stacklevel=3)
    ends = [m.end() for m in _FALLBACK_END.finditer(text)]
    starts = [0, *ends]
    return [(a, e) for a, e in zip(starts, [*ends, len(text)]) if a < e]


def _abbreviation(word: str) -> bool:
    """Titles, initials and the like whose full stop belongs to the word inside a sentence
    (``Mr.``, ``St.``, ``Inc.``, ``J.``): short, alphabetic, capitalised."""
    return word.isalpha() and word[0].isupper() and len(word) <= 4


def sentence_tokens(text: str, a: int, e: int, lang: str = "en") -> list[Token]:
    """The tokens of the sentence ``text[a:e]``, offsets into ``text``. A full stop attached to
    an abbreviation inside a sentence (the segmenter did not end the sentence there) stays part
    of it, as corpora such as CoNLL-2003 write ``St.`` and ``Inc.``."""
    toks = tokenize(text[a:e], a, lang)
    if text.find(".", a, e - 1) < 0:  # no full stop before the last character: nothing to merge
        return toks
    return merge_abbreviations(toks)


def merge_abbreviations(toks: list[Token]) -> list[Token]:
    """``toks`` with each full stop that follows an abbreviation directly, and is not the last
    token, joined to it."""
    merged: list[Token] = []
    for i, t in enumerate(toks):
        prev = merged[-1] if merged else None
        if (t.text == "." and prev is not None and prev.end == t.start and i < len(toks) - 1
                and _abbreviation(prev.text)):
            merged[-1] = Token(prev.text + ".", prev.start, t.end)
        else:
            merged.append(t)
    return merged


def sentences(text: str, lang: str = "en") -> list[list[Token]]:
    """The tokens of each sentence of ``text`` (see :func:`sentence_tokens`)."""
    return [toks for a, e in sentence_spans(text, lang) if (toks := sentence_tokens(text, a, e, lang))]
