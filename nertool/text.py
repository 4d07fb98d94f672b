"""Raw text -> sentences -> tokens with exact character offsets into the caller's text.

Tokens come from a ``tokenizers`` pre-tokenizer (a Split on a Unicode token pattern), so offsets
index the original string (Python code points), never a normalised copy.
"""
from __future__ import annotations

from dataclasses import dataclass

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
_ENDERS = {".", "!", "?", "…", "。", "！", "？", "..."}
_CLOSERS = {'"', "'", "”", "’", ")", "]", "»"}


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offset in the source text
    end: int


def tokenize(text: str, offset: int = 0) -> list[Token]:
    """Tokens of ``text``; offsets are shifted by ``offset``."""
    return [Token(w, a + offset, b + offset) for w, (a, b) in _PRE.pre_tokenize_str(text) if w.strip()]


def split_sentences(tokens: list[Token], text: str | None = None, offset: int = 0) -> list[list[Token]]:
    """Split after sentence-final punctuation (and closing quotes) when the next token starts a
    new sentence (upper case, digit or opening quote); with ``text``, a blank line also splits."""
    sents: list[list[Token]] = []
    cur: list[Token] = []
    for i, tok in enumerate(tokens):
        if cur and text is not None and "\n\n" in text[cur[-1].end - offset : tok.start - offset].replace("\r", ""):
            sents.append(cur)
            cur = []
        cur.append(tok)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is None:
            break
        attached = nxt.start == tok.end
        if tok.text in _CLOSERS and len(cur) > 1 and cur[-2].text in _ENDERS and cur[-2].end == tok.start:
            end_here = True  # a closing quote right after the full stop
        else:
            end_here = tok.text in _ENDERS and not (nxt.text in _CLOSERS and attached)
        if end_here and (nxt.text[:1].isupper() or nxt.text[:1].isdigit() or nxt.text[:1] in "\"'“‘(«"):
            sents.append(cur)
            cur = []
    if cur:
        sents.append(cur)
    return sents
