"""Sentences -> encoded ids -> length-bucketed, padded tensor batches.

Characters are encoded once per distinct word of a batch: ``chars`` holds one row per distinct
word (row 0 is the empty word used for padding) and ``char_index`` points each token at its row.
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

from nertool.model.vocab import CharVocab, WordVocab


@dataclass
class Encoded:
    """One sentence: its tokens, their word ids and (for labelled data) tag ids."""

    tokens: list[str]
    words: list[int]
    tags: list[int] | None = None
    allowed: torch.Tensor | None = None  # (seq_len, num_tags) bool: a partially tagged sentence's possible tags


@dataclass
class Batch:
    words: torch.Tensor  # (batch, seq_len) long
    chars: torch.Tensor  # (distinct_words, max_chars) long
    char_index: torch.Tensor  # (batch, seq_len) long, rows of ``chars``
    mask: torch.Tensor  # (batch, seq_len) bool
    tags: torch.Tensor | None  # (batch, seq_len) long
    index: list[int]  # positions of these sentences in the input
    allowed: torch.Tensor | None = None  # (batch, seq_len, num_tags) bool, where a sentence is partially tagged

    def to(self, device) -> "Batch":
        mv = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(mv(self.words), mv(self.chars), mv(self.char_index), mv(self.mask), mv(self.tags), self.index,
                     mv(self.allowed))


class Encoder:
    """Token lists -> :class:`Encoded` sentences -> :class:`Batch` tensors."""

    def __init__(self, words: WordVocab, chars: CharVocab, max_chars: int):
        self.words = words
        self.chars = chars
        self.max_chars = max_chars
        self._word_cache: dict[str, int] = {}  # token -> word id (normalised by the vocabulary)

    def encode(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[int]] | None = None) -> list[Encoded]:
        cache = self._word_cache
        missing = list({w for s in sentences for w in s if w not in cache})
        if missing:
            if len(cache) > 500_000:
                cache.clear()
            cache.update(zip(missing, self.words.encode([missing])[0]))
        return [
            Encoded(list(toks), [cache[w] for w in toks], None if tags is None else list(tags[i]))
            for i, toks in enumerate(sentences)
        ]

    def char_matrix(self, words: Sequence[str]) -> torch.Tensor:
        """Character ids of ``words`` (each cut to ``max_chars``), padded with 0: (len(words),
        longest) long."""
        cut = [w[: self.max_chars] for w in words]
        lengths = np.fromiter(map(len, cut), dtype=np.int64, count=len(cut))
        width = max(1, int(lengths.max()) if len(cut) else 1)
        # every code point of every word, in order (lone surrogates too: str allows them)
        points = np.frombuffer("".join(cut).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        out = np.zeros((len(cut), width), dtype=np.int64)
        out[np.arange(width) < lengths[:, None]] = self.chars.encode_code_points(points)  # row by row
        return torch.from_numpy(out)

    def collate(self, items: Sequence[Encoded], index: list[int], rows: dict[str, int] | None = None) -> Batch:
        """Pad ``items`` into a batch. With ``rows`` (token -> row of a feature table the caller
        keeps), ``char_index`` points into that table and ``chars`` is left empty."""
        lengths = _longs(len(e.words) for e in items)
        mask = torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)  # shape: (batch, seq_len)
        shared = rows is not None
        tokens = chain.from_iterable(e.tokens for e in items)
        if rows is None:
            rows = {}
            flat_rows = _longs(rows.setdefault(w, len(rows) + 1) for w in tokens)
        else:
            flat_rows = _longs(map(rows.__getitem__, tokens))
        words = torch.zeros(mask.shape, dtype=torch.long)
        words[mask] = _longs(chain.from_iterable(e.words for e in items))
        char_index = torch.zeros(mask.shape, dtype=torch.long)
        char_index[mask] = flat_rows
        tags = None
        if items[0].tags is not None:
            tags = torch.zeros(mask.shape, dtype=torch.long)
            tags[mask] = _longs(chain.from_iterable(e.tags for e in items))
        chars = torch.zeros(0, 1, dtype=torch.long) if shared else self.char_matrix([""] + list(rows))
        return Batch(words, chars, char_index, mask, tags, index, _allowed(items, tags))

    def batches(
        self,
        items: Sequence[Encoded],
        batch_size: int,
        shuffle: bool = False,
        rng: random.Random | None = None,
        max_tokens: int = 0,
        rows: dict[str, int] | None = None,
    ) -> Iterator[Batch]:
        """Batches of sentences of similar length (see :func:`length_buckets`); ``rows`` as in
        :meth:`collate`."""
        for group in length_buckets([len(e.words) for e in items], batch_size, shuffle, rng, max_tokens):
            yield self.collate([items[i] for i in group], group, rows)


def length_buckets(
    lengths: Sequence[int], batch_size: int, shuffle: bool = False, rng: random.Random | None = None, max_tokens: int = 0
) -> list[list[int]]:
    """Groups of indices of similar length. Without ``shuffle``, sorted by length (equal lengths
    together, so inference batches need little padding); with it, ties are broken at random and
    the groups come in random order. ``max_tokens`` (if > 0) also caps a group's padded size."""
    order = list(range(len(lengths)))
    if shuffle:
        rng = rng or random.Random()
        rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])  # stable: random order within a length
    groups: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        n = lengths[i]
        if cur and (len(cur) >= batch_size or (max_tokens and n * (len(cur) + 1) > max_tokens)):
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    if shuffle:
        rng.shuffle(groups)
    return groups


def _longs(values: Iterable[int]) -> torch.Tensor:
    """A 1-d long tensor of ``values`` (through numpy: a quarter of ``torch.tensor``'s time on a
    list of ints)."""
    return torch.from_numpy(np.fromiter(values, dtype=np.int64))


def _allowed(items: Sequence[Encoded], tags: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, seq_len, num_tags) bool, the tags each token may have, when a sentence of the batch
    is partially tagged (the others' rows: their one gold tag); else None."""
    partial = [k for k, e in enumerate(items) if e.allowed is not None]
    if not partial or tags is None:
        return None
    num_tags = items[partial[0]].allowed.shape[1]
    out = torch.nn.functional.one_hot(tags, num_tags).bool()
    for k in partial:
        out[k, : len(items[k].words)] = items[k].allowed
    return out
