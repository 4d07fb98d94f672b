"""CRF decoding: batched Viterbi under transition constraints. TorchScript-able functions.

Conventions (as in pytorch-crf): ``transitions[i, j]`` scores tag ``j`` following tag ``i``;
``start[j]`` scores a sentence beginning with ``j``; ``end[i]`` one ending with ``i``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .tags import allowed_transitions

NEG = -10000.0  # added to forbidden transitions; exp(NEG) underflows to 0 in float32


def constraint_bias(scheme: str, labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Additive masks ``(start, end, trans)``: 0 where allowed, ``NEG`` where forbidden."""
    start, end, trans = allowed_transitions(scheme, labels)

    def bias(allowed) -> torch.Tensor:
        return (1.0 - torch.tensor(allowed, dtype=torch.float32)) * NEG

    return bias(start), bias(end), bias(trans)


def viterbi(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best tag sequence of every sentence in the batch.

    emissions: (batch, seq_len, num_tags); mask: (batch, seq_len) bool, first column all True.
    Returns ``(tags, scores)``: (batch, seq_len) long, (batch,) float. Tags past a sentence's
    length are undefined.
    """
    batch, seq_len, num_tags = emissions.shape
    lengths = mask.long().sum(1)  # shape: (batch,)
    score = start.unsqueeze(0) + emissions[:, 0]  # shape: (batch, num_tags)
    history: list[torch.Tensor] = []
    trans = transitions.unsqueeze(0)  # shape: (1, num_tags, num_tags)
    for t in range(1, seq_len):
        # shape: (batch, num_tags_prev, num_tags_next)
        nxt = score.unsqueeze(2) + trans
        best, idx = nxt.max(1)  # shape: (batch, num_tags) each
        best = best + emissions[:, t]
        score = torch.where(mask[:, t].unsqueeze(1), best, score)
        history.append(idx)
    score = score + end.unsqueeze(0)
    best_score, last = score.max(1)  # shape: (batch,)
    tags = torch.empty(batch, seq_len, dtype=torch.long, device=emissions.device)
    cur = last
    tags[:, seq_len - 1] = cur
    for t in range(seq_len - 2, -1, -1):
        prev = history[t].gather(1, cur.unsqueeze(1)).squeeze(1)  # shape: (batch,)
        cur = torch.where(lengths > t + 1, prev, cur)
        tags[:, t] = cur
    return tags, best_score
