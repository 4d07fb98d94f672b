"""A gazetteer built from labelled training sentences, used at decoding as a prior: the spans of
new text that match a training mention get emission biases towards the types that mention had.
Screened on dev and not adopted (BENCHMARKS.md section 12); kept for ``screen_decoding.py``.

For every gold mention's exact token sequence ``s`` it keeps how often ``s`` was a whole mention
of each type and how often ``s`` occurred in the training text in all; ``p(t | s) =
(c_t + 1/(K+1)) / (n + 1)`` over the K entity types and ``O`` (the occurrences that were not a
whole mention)."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from nertool.data import tags as tagmod


@dataclass(frozen=True)
class Gazetteer:
    """``types``: the entity types, then ``"O"``; ``entries`` maps a token sequence to its counts,
    one per entity type (as whole mentions), then its number of occurrences in all."""

    types: tuple[str, ...]
    entries: dict[tuple[str, ...], tuple[int, ...]]

    @property
    def max_len(self) -> int:
        return max((len(k) for k in self.entries), default=0)

    def probabilities(self, key: tuple[str, ...]) -> list[float]:
        """``p(t | key)`` for each of :attr:`types` (smoothed; ``key`` must be an entry)."""
        *mentions, n = self.entries[key]
        counts = [*mentions, n - sum(mentions)]
        prior = 1.0 / len(counts)
        return [(c + prior) / (n + 1) for c in counts]


def build(sentences: Iterable[tuple[Sequence[str], Sequence[str]]], scheme: str) -> Gazetteer:
    """The gazetteer of labelled ``(tokens, tags)`` sentences whose tags follow ``scheme``."""
    sentences = list(sentences)
    mentions: dict[tuple[str, ...], dict[str, int]] = {}
    for toks, tgs in sentences:
        for typ, s, e in tagmod.chunks(tgs, scheme):
            per = mentions.setdefault(tuple(toks[s:e]), {})
            per[typ] = per.get(typ, 0) + 1
    types = tuple(sorted({t for per in mentions.values() for t in per}))
    longest = max((len(k) for k in mentions), default=0)
    firsts = {k[0] for k in mentions}
    totals = dict.fromkeys(mentions, 0)
    for toks, _ in sentences:
        for i, tok in enumerate(toks):
            if tok not in firsts:
                continue
            for j in range(i + 1, min(i + longest, len(toks)) + 1):
                key = tuple(toks[i:j])
                if key in totals:
                    totals[key] += 1
    entries = {k: (*(per.get(t, 0) for t in types), totals[k]) for k, per in mentions.items()}
    return Gazetteer((*types, "O"), entries)


def matches(gaz: Gazetteer, tokens: Sequence[str]) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of ``tokens`` that are gazetteer entries: left to right, the
    longest entry first, no overlaps."""
    out: list[tuple[int, int]] = []
    longest = gaz.max_len
    i = 0
    while i < len(tokens):
        for j in range(min(i + longest, len(tokens)), i, -1):
            if tuple(tokens[i:j]) in gaz.entries:
                out.append((i, j))
                i = j
                break
        else:
            i += 1
    return out


def bias(gaz: Gazetteer, labels: Sequence[str], sentences: Sequence[Sequence[str]], weight: float) -> torch.Tensor:
    """(tokens, num_tags) emission biases, tokens in sentence order: every token of a matched span
    gets ``weight * log p(t | span)`` on each tag of type ``t`` (``O`` included); zero elsewhere.
    A tag whose type the gazetteer lacks gets the smallest probability of the span."""
    tag_types = [tagmod.split_tag(label)[1] or "O" for label in labels]
    index = {t: k for k, t in enumerate(gaz.types)}
    n_tokens = sum(len(s) for s in sentences)
    out = torch.zeros(n_tokens, len(labels))
    if weight == 0.0:
        return out
    rows: dict[tuple[str, ...], list[float]] = {}
    at = 0
    for toks in sentences:
        for s, e in matches(gaz, toks):
            key = tuple(toks[s:e])
            row = rows.get(key)
            if row is None:
                p = gaz.probabilities(key)
                low = min(p)
                row = rows[key] = [weight * math.log(p[index[t]] if t in index else low) for t in tag_types]
            out[at + s : at + e] = torch.tensor(row)
        at += len(toks)
    return out
