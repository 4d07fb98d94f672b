"""Raw text -> sentences with exact character offsets, by ``sentencex`` (a maintained
rule-based segmenter in Rust with abbreviation lists for some 300 languages; chosen over pysbd,
syntok and nertool's former rules on corpora/segmentation, see BENCHMARKS.md)."""
from __future__ import annotations

from sentencex import get_sentence_boundaries

from nertool.data.text import Token, tokenize


def sentence_spans(text: str, lang: str = "en") -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (code-point offsets, surrounding whitespace
    excluded; sentences holding only whitespace are dropped)."""
    out = []
    for b in get_sentence_boundaries(lang, text):
        a, e = b["start_index"], b["end_index"]
        chunk = text[a:e]
        stripped = chunk.strip()
        if stripped:
            a += len(chunk) - len(chunk.lstrip())
            out.append((a, a + len(stripped)))
    return out


def _abbreviation(word: str) -> bool:
    """Titles, initials and the like whose full stop belongs to the word inside a sentence
    (``Mr.``, ``St.``, ``Inc.``, ``J.``): short, alphabetic, capitalised."""
    return word.isalpha() and word[0].isupper() and len(word) <= 4


def sentence_tokens(text: str, a: int, e: int) -> list[Token]:
    """The tokens of the sentence ``text[a:e]``, offsets into ``text``. A full stop attached to
    an abbreviation inside a sentence (the segmenter did not end the sentence there) stays part
    of it, as corpora such as CoNLL-2003 write ``St.`` and ``Inc.``."""
    toks = tokenize(text[a:e], a)
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
    return [toks for a, e in sentence_spans(text, lang) if (toks := sentence_tokens(text, a, e))]
