"""Raw text -> tokens with exact character offsets into the caller's text (sentences: segment.py).

Tokens come from a ``tokenizers`` pre-tokenizer (a Split on a Unicode token pattern), so offsets
index the original string (Python code points), never a normalised copy.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from tokenizers import Regex, pre_tokenizers

# abbreviations (U.S.); numbers as CoNLL-2003 and the Penn Treebank write them: 3.5, 1,000, 12:30,
# dates and scores (1996-08-22, 2-1), with letters or hyphenated words after them (16th, 1990s,
# 3.5-fold, 21-year-old); words with inner apostrophes or hyphens; a clitic standing alone ('s);
# runs of dashes or dots (--, ...); else any single non-space character with its combining marks
TOKEN_PATTERN = (
    r"(?:\p{L}\.){2,}"
    r"|\p{N}+(?:[.,:/\-]\p{N}+)*[\p{L}\p{M}_]*(?:['’\-][\p{L}\p{M}\p{N}_]+)*"
    r"|[\p{L}\p{M}\p{N}_]+(?:['’\-][\p{L}\p{M}\p{N}_]+)*"
    r"|['’](?i:s|re|ve|ll|d|m)(?![\p{L}\p{M}\p{N}_])"
    r"|-{2,}|\.{2,}"
    r"|\S\p{M}*"
)
# English clitics at the end of a word, split off as CoNLL-2003 and the Penn Treebank write them:
# Toyota's -> Toyota 's, don't -> do n't, they're -> they 're (English only: Dutch programma's is
# one word, French l'homme splits the other way)
ENGLISH_CLITICS = r"(?i)(?:n['’]t|['’](?:s|re|ve|ll|d|m))\Z"
# the pattern's matches are the pieces kept (invert), what lies between them (white space) is dropped
_PRE = pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="removed", invert=True)
_CLITIC = re.compile(ENGLISH_CLITICS)


class Token(NamedTuple):
    """A token and its character offsets (a tuple: cheap to make by the million)."""

    text: str
    start: int  # character offset in the source text
    end: int


_make = tuple.__new__  # a Token without the Python-level __new__ of a NamedTuple: 3x faster


def tokenize(text: str, offset: int = 0, lang: str = "en") -> list[Token]:
    """Tokens of ``text``; offsets are shifted by ``offset``. English (``lang="en"``) also splits
    clitics off (``'s``, ``n't``, ``'re``...)."""
    toks = [_make(Token, (w, a + offset, b + offset)) for w, (a, b) in _PRE.pre_tokenize_str(text)
            if w and not w.isspace()]  # (a control character the pattern takes for a token, Python for space)
    if lang == "en" and ("'" in text or "’" in text):  # one scan of the text; most sentences have none
        return _split_clitics(toks)
    return toks


def _split_clitics(toks: list[Token]) -> list[Token]:
    """``toks`` with an English clitic at the end of a longer token split off as its own token."""
    out: list[Token] = []
    for t in toks:
        m = _CLITIC.search(t.text) if len(t.text) > 2 else None
        if m is None or m.start() == 0:
            out.append(t)
        else:
            cut = m.start()
            out.append(_make(Token, (t.text[:cut], t.start, t.start + cut)))
            out.append(_make(Token, (t.text[cut:], t.start + cut, t.end)))
    return out
