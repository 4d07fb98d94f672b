"""The character features of every word a Tagger has seen, computed once per word type (the
network's weights never change while it tags): rows of one table, row 0 the empty word that pads
sentences, and the word -> row map that batches index it with."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

FEATURE_CACHE_ROWS = 200_000  # words whose character features a Tagger keeps


class FeatureCache:
    """Feature rows of ``model.word_features`` for the words seen so far; started afresh when it
    would pass :data:`FEATURE_CACHE_ROWS` words, so an endless stream does not grow it without bound."""

    def __init__(self, model, encoder, device: torch.device):
        self.model, self.encoder, self.device = model, encoder, device
        self.rows: dict[str, int] = {}  # word -> row of the table
        self._table: torch.Tensor | None = None

    def clear(self) -> None:
        self.rows.clear()
        self._table = None

    def table(self, words: set[str]) -> torch.Tensor:
        """The feature table, extended with the words not seen before: (rows, feature_dim)."""
        rows = self.rows
        missing = _by_length(w for w in words if w not in rows)
        if rows and len(rows) + 1 + len(missing) > FEATURE_CACHE_ROWS:
            self.clear()
            missing = _by_length(words)
        if self._table is None:  # row 0: the empty word that pads sentences (zeros)
            self._table = self.model.word_features(self.encoder.char_matrix([""]).to(self.device))
        used = len(rows) + 1
        n = used + len(missing)
        if n > self._table.shape[0]:
            grown = self._table.new_zeros(max(n, 2 * self._table.shape[0]), self._table.shape[1])
            grown[:used] = self._table[:used]
            self._table = grown
        for a, b in length_runs(missing, self.encoder.max_chars, 4096):  # no padding characters
            chars = self.encoder.char_matrix(missing[a:b]).to(self.device)
            self._table[used + a : used + b] = self.model.word_features(chars)
        rows.update(zip(missing, range(used, n)))
        return self._table[:n]


def _by_length(words: Iterable[str]) -> list[str]:
    """``words`` sorted by length, then alphabetically."""
    out = sorted(words)
    out.sort(key=len)  # stable
    return out


def length_runs(words: Sequence[str], max_chars: int, size: int) -> list[tuple[int, int]]:
    """``(start, end)`` ranges of ``words`` (sorted by length) whose words have one encoded length
    (at most ``max_chars`` characters), each at most ``size`` long."""
    counts = Counter(min(n, max_chars) for n in map(len, words))
    runs: list[tuple[int, int]] = []
    start = 0
    for length in sorted(counts):
        end = start + counts[length]
        runs.extend((a, min(a + size, end)) for a in range(start, end, size))
        start = end
    return runs
