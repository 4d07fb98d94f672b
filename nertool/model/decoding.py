"""CRF decoding: batched Viterbi under transition constraints. TorchScript-able functions.

Conventions (as in pytorch-crf): ``transitions[i, j]`` scores tag ``j`` following tag ``i``;
``start[j]`` scores a sentence beginning with ``j``; ``end[i]`` one ending with ``i``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nertool.data.tags import allowed_transitions

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


TINY = 1e-30  # a scaled sum below this may have lost its mass to underflow: recompute it exactly


def _log_step(x: torch.Tensor, exp_mats: torch.Tensor, t_max: float, mats: torch.Tensor) -> torch.Tensor:
    """``logsumexp_i(x[d, :, i] + mats[d, i, j])`` for every ``d`` and ``j``: (2, batch, num_tags),
    the forward (``d`` 0) and the backward (``d`` 1) step at once.

    Fast path: one batched matrix product in probability space, ``x`` rescaled by its row maximum
    and the transitions by theirs (``exp_mats = exp(mats - t_max)``). Where a sum comes out tiny
    (the best previous tags cannot reach ``j``, say), the mass may have underflowed: those rows
    are redone exactly in log space.
    """
    m = x.amax(2, keepdim=True).clamp(min=-1e30)  # shape: (2, batch, 1); a row of -inf stays -inf below
    s = torch.bmm(torch.exp(x - m), exp_mats)  # shape: (2, batch, num_tags)
    out = torch.log(s).add_(m).add_(t_max)
    tiny = s < TINY
    if bool(tiny.any()):
        rows = tiny.any(2).nonzero()  # shape: (n, 2): direction, sentence
        d, r = rows[:, 0], rows[:, 1]
        out[d, r] = torch.logsumexp(x[d, r].unsqueeze(2) + mats[d], dim=1)
    return out


def forward_backward(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and backward log-scores and the log partition function.

    Returns ``(alpha, beta, log_z)``: (batch, seq_len, num_tags) twice and (batch,).
    ``alpha[b, t, j]`` sums the paths over positions ``0..t`` ending in ``j`` (emission at ``t``
    included); ``beta[b, t, j]`` sums the continuations after ``t`` from ``j`` to the end (end
    score included). Token marginals are ``exp(alpha + beta - log_z)`` (see :func:`safe_log_z`).
    Exact whatever the gaps between scores (every step is a logsumexp, computed by a rescaled
    matrix product where that loses nothing); where no path exists (every one forbidden by
    ``-inf`` scores) the result is ``-inf``, never NaN. The two recursions run side by side,
    one step of each per batched operation.
    """
    batch, seq_len, num_tags = emissions.shape
    lengths = mask.long().sum(1)  # shape: (batch,)
    t_max = float(transitions.max())
    if not math.isfinite(t_max):
        t_max = 0.0
    mats = torch.stack([transitions, transitions.t()])  # shape: (2, num_tags, num_tags): forward, backward
    exp_mats = torch.exp(mats - t_max)  # entries in [0, 1]
    alive = mask.unsqueeze(2)  # shape: (batch, seq_len, 1): alpha moves on at real tokens
    # beta at position u comes from u + 1 where the sentence goes on past u
    goes_on = (lengths.view(-1, 1) > torch.arange(1, seq_len + 1, device=lengths.device)).unsqueeze(2)
    a = start.unsqueeze(0) + emissions[:, 0]  # shape: (batch, num_tags)
    last = end.unsqueeze(0).expand(batch, num_tags)
    b = last
    alphas, betas = [a], [b]
    for t in range(1, seq_len):
        u = seq_len - 1 - t  # the backward recursion's position in the same step
        y = _log_step(torch.stack([a, emissions[:, u + 1] + b]), exp_mats, t_max, mats)
        a = torch.where(alive[:, t], y[0] + emissions[:, t], a)
        b = torch.where(goes_on[:, u], y[1], last)
        alphas.append(a)
        betas.append(b)
    log_z = torch.logsumexp(a + end.unsqueeze(0), dim=1)  # shape: (batch,)
    betas.reverse()
    return torch.stack(alphas, 1), torch.stack(betas, 1), log_z


def safe_log_z(log_z: torch.Tensor) -> torch.Tensor:
    """``log_z`` with ``-inf`` (no path at all) replaced by 0, to normalise by: the marginals of
    such a sentence then come out as ``exp(-inf) = 0`` instead of NaN."""
    return torch.where(torch.isfinite(log_z), log_z, torch.zeros_like(log_z))


def marginals(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor
) -> torch.Tensor:
    """Posterior probability of every tag at every position, (batch, seq_len, num_tags);
    zero past each sentence's end."""
    alpha, beta, log_z = forward_backward(emissions, mask, start, end, transitions)
    p = torch.exp(alpha + beta - safe_log_z(log_z).view(-1, 1, 1))
    return p * mask.unsqueeze(2).to(p.dtype)


def span_marginals(
    emissions: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    log_z: torch.Tensor,
    tags: torch.Tensor,
    spans: torch.Tensor,
    lengths: torch.Tensor,
    transitions: torch.Tensor,
    continuations: torch.Tensor,
) -> torch.Tensor:
    """Probability that each span's tokens carry exactly their labels in ``tags`` and that the
    chunk ends there.

    emissions: (batch, seq_len, num_tags); alpha, beta, log_z from :func:`forward_backward`;
    tags: (batch, seq_len) the decoded path; spans: (n, 3) rows ``(sentence, start, end)`` with
    ``end`` exclusive; lengths: (batch,); continuations: (num_tags,) from
    :func:`nertool.data.tags.continuations` (-1: no label extends a chunk ending in this one).
    Returns (n,) probabilities in [0, 1]: alpha at the first token, the path inside, beta at the
    last, normalised; minus the paths that carry the chunk on past its end (IOB schemes).
    """
    # path score increments along the decoded path, shape: (batch, seq_len)
    inc = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
    inc[:, 1:] += transitions[tags[:, :-1], tags[:, 1:]]
    cum = inc.cumsum(1)
    r, a, e = spans[:, 0], spans[:, 1], spans[:, 2]  # shape: (n,) each
    first, last = tags[r, a], tags[r, e - 1]
    path = alpha[r, a, first] + cum[r, e - 1] - cum[r, a]
    log_z = safe_log_z(log_z)
    p = torch.exp(path + beta[r, e - 1, last] - log_z[r])
    cont = continuations[last]  # shape: (n,)
    ok = (cont >= 0) & (e < lengths[r])
    c, nxt = cont.clamp(min=0), e.clamp(max=emissions.shape[1] - 1)
    extend = torch.exp(path + transitions[last, c] + emissions[r, nxt, c] + beta[r, nxt, c] - log_z[r])
    p = p - torch.where(ok, extend, torch.zeros_like(extend))
    return p.clamp(0.0, 1.0)


def nbest_viterbi(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best tag sequences of every sentence, best first.

    Returns ``(tags, scores)``: (batch, k, seq_len) and (batch, k). A sentence with fewer than
    ``k`` sequences pads with score ``-inf``.
    """
    batch, seq_len, num_tags = emissions.shape
    neg_inf = float("-inf")
    # score[b, j, r]: r-th best score of a prefix ending in tag j
    score = torch.full((batch, num_tags, k), neg_inf, device=emissions.device, dtype=emissions.dtype)
    score[:, :, 0] = start.unsqueeze(0) + emissions[:, 0]
    history: list[torch.Tensor] = []
    for t in range(1, seq_len):
        # shape: (batch, prev_tag, rank, next_tag) -> (batch, prev_tag * rank, next_tag)
        cand = (score.unsqueeze(3) + transitions.view(1, num_tags, 1, num_tags)).reshape(batch, num_tags * k, num_tags)
        best, idx = cand.topk(k, dim=1)  # shape: (batch, k, next_tag)
        best = best.transpose(1, 2) + emissions[:, t].unsqueeze(2)  # shape: (batch, next_tag, k)
        idx = idx.transpose(1, 2)  # shape: (batch, next_tag, k), flat (prev_tag * k + rank)
        keep = mask[:, t].view(batch, 1, 1)
        score = torch.where(keep, best, score)
        # on padded steps, point each (tag, rank) back at itself
        ident = (torch.arange(num_tags, device=emissions.device).view(1, num_tags, 1) * k
                 + torch.arange(k, device=emissions.device).view(1, 1, k)).expand(batch, num_tags, k)
        history.append(torch.where(keep, idx, ident))
    final = (score + end.view(1, num_tags, 1)).reshape(batch, num_tags * k)
    top, flat = final.topk(min(k, num_tags * k), dim=1)  # shape: (batch, k)
    tags = torch.zeros(batch, k, seq_len, dtype=torch.long, device=emissions.device)
    cur = flat  # flat (tag * k + rank) at the last position
    tags[:, :, seq_len - 1] = torch.div(cur, k, rounding_mode="floor")
    for t in range(seq_len - 2, -1, -1):
        prev = history[t].reshape(batch, num_tags * k).gather(1, cur)
        cur = prev
        tags[:, :, t] = torch.div(cur, k, rounding_mode="floor")
    return tags, top


def type_consistency(
    marginals: torch.Tensor, groups: torch.Tensor, tag_types: torch.Tensor, n_types: int, weight: float
) -> torch.Tensor:
    """Emission biases that pull the mentions of one name in one document towards one type.

    ``marginals`` (tokens, num_tags) are each token's tag marginals; ``groups`` (tokens,) puts
    tokens that are mentions of the same name (in the same document) in one group, ``-1`` for
    tokens in none; ``tag_types`` (num_tags,) maps each tag to its type (``O`` is a type too).
    Returns (tokens, num_tags): ``weight * log(m + 1e-6)`` where ``m`` is the mean, over the
    token's group, of the marginal mass of the tag's type; zero for tokens in no group.
    """
    n_tokens, num_tags = marginals.shape
    mass = marginals.new_zeros(n_tokens, n_types).index_add_(1, tag_types, marginals)  # shape: (tokens, types)
    bias = marginals.new_zeros(n_tokens, num_tags)
    member = groups >= 0
    if not bool(member.any()) or weight == 0.0:
        return bias
    g = groups[member]
    n_groups = int(g.max()) + 1
    sums = marginals.new_zeros(n_groups, n_types).index_add_(0, g, mass[member])
    counts = torch.bincount(g, minlength=n_groups).to(marginals.dtype).clamp(min=1)
    mean = sums / counts.unsqueeze(1)  # shape: (groups, types)
    bias[member] = weight * torch.log(mean[g] + 1e-6)[:, tag_types]
    return bias
