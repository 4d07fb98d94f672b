"""Sentences -> encoded ids -> length-bucketed, padded tensor batches."""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from .vocab import CharVocab, WordVocab


@dataclass
class Encoded:
    """One sentence as ids; ``tags`` is None for unlabelled input."""

    words: list[int]
    chars: list[list[int]]
    tags: list[int] | None = None


@dataclass
class Batch:
    words: torch.Tensor  # (batch, seq_len) long
    chars: torch.Tensor  # (batch, seq_len, max_chars) long
    mask: torch.Tensor  # (batch, seq_len) bool
    tags: torch.Tensor | None  # (batch, seq_len) long
    index: list[int]  # positions of these sentences in the input

    def to(self, device) -> "Batch":
        mv = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(mv(self.words), mv(self.chars), mv(self.mask), mv(self.tags), self.index)


class Encoder:
    """Turns token lists into :class:`Encoded` sentences, caching each word's characters."""

    def __init__(self, words: WordVocab, chars: CharVocab, max_chars: int):
        self.words = words
        self.chars = chars
        self.max_chars = max_chars
        self._char_cache: dict[str, list[int]] = {}

    def encode(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[int]] | None = None) -> list[Encoded]:
        word_ids = self.words.encode(sentences)
        cache = self._char_cache
        out = []
        for i, (toks, ids) in enumerate(zip(sentences, word_ids)):
            chs = []
            for w in toks:
                c = cache.get(w)
                if c is None:
                    c = self.chars.encode_word(w, self.max_chars)
                    if len(cache) < 1_000_000:
                        cache[w] = c
                chs.append(c)
            out.append(Encoded(ids, chs, None if tags is None else list(tags[i])))
        return out


def collate(items: Sequence[Encoded], index: list[int]) -> Batch:
    b = len(items)
    t = max(len(e.words) for e in items)
    c = max(1, max(len(ch) for e in items for ch in e.chars))
    words = torch.zeros(b, t, dtype=torch.long)
    chars = torch.zeros(b, t, c, dtype=torch.long)
    mask = torch.zeros(b, t, dtype=torch.bool)
    tags = torch.zeros(b, t, dtype=torch.long) if items[0].tags is not None else None
    for i, e in enumerate(items):
        n = len(e.words)
        words[i, :n] = torch.tensor(e.words)
        mask[i, :n] = True
        for j, ch in enumerate(e.chars):
            if ch:
                chars[i, j, : len(ch)] = torch.tensor(ch)
        if tags is not None:
            tags[i, :n] = torch.tensor(e.tags)
    return Batch(words, chars, mask, tags, index)


def bucket_batches(
    items: Sequence[Encoded], batch_size: int, shuffle: bool = False, rng: random.Random | None = None, max_tokens: int = 0
) -> Iterator[Batch]:
    """Batches of sentences of similar length. With ``shuffle``, sentences are shuffled within
    length buckets and batches are served in random order; otherwise sorted by length.
    ``max_tokens`` (if > 0) caps the padded size of a batch as well."""
    order = list(range(len(items)))
    if shuffle:
        rng = rng or random.Random()
        rng.shuffle(order)
        # sort by length with a random tie-break: similar lengths, different neighbours each epoch
        order.sort(key=lambda i: len(items[i].words))
    else:
        order.sort(key=lambda i: len(items[i].words))
    groups: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        n = len(items[i].words)
        if cur and (len(cur) >= batch_size or (max_tokens and n * (len(cur) + 1) > max_tokens)):
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    if shuffle:
        rng.shuffle(groups)
    for g in groups:
        yield collate([items[i] for i in g], g)
