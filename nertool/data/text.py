"""Raw text -> tokens with exact character offsets into the caller's text (sentences: segment.py).

Tokens come from a ``tokenizers`` pre-tokenizer (a Split on a Unicode token pattern), so offsets
index the original string (Python code points), never a normalised copy.
"""
from __future__ import annotations

from typing import NamedTuple

from tokenizers import Regex, pre_tokenizers

# abbreviations (U.S.), numbers (3.5, 1,000, 12:30), words with inner apostrophes or hyphens,
# else any single non-space character with its combining marks
TOKEN_PATTERN = (
    r"(?:\p{L}\.){2,}"
    r"|\p{N}+(?:[.,:/]\p{N}+)*"
    r"|[\p{L}\p{M}\p{N}_]+(?:['’\-][\p{L}\p{M}\p{N}_]+)*"
    r"|\S\p{M}*"
)
_PRE = pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated")


class Token(NamedTuple):
    """A token and its character offsets (a tuple: cheap to make by the million)."""

    text: str
    start: int  # character offset in the source text
    end: int


_make = tuple.__new__  # a Token without the Python-level __new__ of a NamedTuple: 3x faster


def tokenize(text: str, offset: int = 0) -> list[Token]:
    """Tokens of ``text``; offsets are shifted by ``offset``."""
    return [_make(Token, (w, a + offset, b + offset)) for w, (a, b) in _PRE.pre_tokenize_str(text)
            if w and not w.isspace()]
