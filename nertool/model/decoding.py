"""CRF decoding: batched Viterbi under transition constraints. TorchScript-able functions.

Conventions (as in pytorch-crf): ``transitions[i, j]`` scores tag ``j`` following tag ``i``;
``start[j]`` scores a sentence beginning with ``j``; ``end[i]`` one ending with ``i``.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import torch

from nertool.data.tags import allowed_transitions

NEG = -10000.0  # added to forbidden transitions; exp(NEG) underflows to 0 in float32


def constraint_bias(scheme: str, labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Additive masks ``(start, end, trans)``: 0 where allowed, ``NEG`` where forbidden."""
    start, end, trans = allowed_transitions(scheme, labels)

    def bias(allowed) -> torch.Tensor:
        return (1.0 - torch.tensor(allowed, dtype=torch.float32)) * NEG

    return bias(start), bias(end), bias(trans)


def _work(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the precision the recursions run in: float64 stays, anything else (float16,
    bfloat16, float32) becomes float32."""
    return x if x.dtype == torch.float64 else x.float()


def forbid(transitions: torch.Tensor) -> torch.Tensor:
    """Scores with every ``NEG``-biased (forbidden) entry made ``-inf``, so that no forbidden
    path keeps even a vanishing share of the probability, whatever the sentence's length."""
    return transitions.masked_fill(transitions <= -5000.0, float("-inf"))  # NEG / 2


def viterbi(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best tag sequence of every sentence in the batch.

    emissions: (batch, seq_len, num_tags); mask: (batch, seq_len) bool, first column all True.
    Returns ``(tags, scores)``: (batch, seq_len) long, (batch,) float64 (the best path's score).
    Tags past a sentence's length are undefined. Any float dtype in; float32 (float64 for
    float64) inside, the scores shifted by their maximum every 32 steps so that rounding does not
    grow with the length.

    The forward pass keeps each step's scores and takes maxima only, no arg-maxima (torch's
    reductions with indices over a few tags cost several times more, BENCHMARKS.md 23.1); the
    backtrace recomputes the one arg-maximum it follows at each step from the same sums.
    """
    emissions = _work(emissions)
    start, end, transitions = start.to(emissions.dtype), end.to(emissions.dtype), transitions.to(emissions.dtype)
    batch, seq_len, num_tags = emissions.shape
    steps = emissions.permute(1, 2, 0).contiguous().unbind(0)  # each (num_tags, batch): tags first
    keeps = mask.t().unsqueeze(1).unbind(0)  # each (1, batch)
    score = start.unsqueeze(1) + steps[0]  # shape: (num_tags, batch)
    offset = torch.zeros(batch, dtype=torch.float64, device=emissions.device)  # the shifts taken out
    trans = transitions.unsqueeze(2)  # shape: (num_tags_prev, num_tags_next, 1)
    history: list[torch.Tensor] = []  # the scores before each step
    full = bool(mask.all())  # no padding (one sentence, say): every step moves every row on
    for t in range(1, seq_len):
        history.append(score)
        # shape: (num_tags_prev, num_tags_next, batch) -> (num_tags_next, batch)
        best = (score.unsqueeze(1) + trans).amax(0) + steps[t]
        keep = keeps[t]
        if t % 32 == 0:  # every 32 steps, take the scores' maximum out (into float64)
            shift = best.amax(0, keepdim=True).clamp(min=-1e30)  # shape: (1, batch)
            best = best - shift
            offset = offset + torch.where(keep[0], shift[0], torch.zeros_like(shift[0])).double()
        score = best if full else torch.where(keep, best, score)
    best_score, cur = (score + end.unsqueeze(1)).max(0)  # shape: (batch,) each
    path = [cur]
    moves = mask.t().unbind(0)  # each (batch,): position t is a real token
    for t in range(seq_len - 2, -1, -1):
        # the same sums as the forward step's, for the tag followed: (num_tags_prev, batch)
        prev = (history[t] + transitions.index_select(1, cur)).max(0)[1]  # shape: (batch,)
        cur = prev if full else torch.where(moves[t + 1], prev, cur)
        path.append(cur)
    path.reverse()
    return torch.stack(path, 1), best_score.double() + offset


def _log_step(x: torch.Tensor, exp_mats: torch.Tensor, t_max: float, mats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``logsumexp_i(x[d, :, i] + mats[d, i, j]) - m[d]`` for every ``d`` and ``j``, and ``m``, the
    maximum of each row of ``x``: (2, batch, num_tags) and (2, batch, 1), the forward (``d`` 0)
    and the backward (``d`` 1) step at once. Leaving ``m`` out keeps the scores near zero at any
    length; the caller sums the ``m`` in float64.

    Fast path: one batched matrix product in probability space, ``x`` rescaled by its row maximum
    and the transitions by theirs (``exp_mats = exp(mats - t_max)``). Where a sum comes out tiny
    (the best previous tags cannot reach ``j``, say), the mass may have underflowed: those rows
    are redone exactly in log space.
    """
    m = x.amax(2, keepdim=True).clamp(min=-1e30)  # shape: (2, batch, 1); a row of -inf stays -inf below
    shifted = x - m
    s = torch.bmm(torch.exp(shifted), exp_mats)  # shape: (2, batch, num_tags)
    out = torch.log(s).add_(t_max)
    if float(s.min()) < 1e-30:  # one reduction a step in the common case, no mask
        tiny = s < 1e-30
        rows = tiny.any(2).nonzero()  # shape: (n, 2): direction, sentence
        d, r = rows[:, 0], rows[:, 1]
        out[d, r] = torch.logsumexp(shifted[d, r].unsqueeze(2) + mats[d], dim=1)
    return out, m


def _normalised(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y - c, c)`` with ``c`` the maximum over the last dimension (``-1e30`` for a row of
    ``-inf``, which stays ``-inf``). y: (..., num_tags); c: (..., 1)."""
    c = y.amax(-1, keepdim=True).clamp(min=-1e30)
    return y - c, c


def _shifted(emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Emissions less each position's maximum, and the sum of those maxima over each sentence's
    real tokens in float64: (batch, seq_len, num_tags), (batch,). The recursions then add numbers
    near zero, so a score gap of 10,000 costs no precision in float32."""
    top = _position_max(emissions)  # shape: (batch, seq_len, 1)
    total = torch.where(mask, top[:, :, 0], torch.zeros_like(top[:, :, 0])).double().sum(1)
    return emissions - top, total


def _position_max(emissions: torch.Tensor) -> torch.Tensor:
    """Each position's largest score, (batch, seq_len, 1); 0 where it is not finite."""
    top = emissions.amax(2, keepdim=True)
    return torch.where(torch.isfinite(top), top, torch.zeros_like(top))


def forward_backward(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised forward and backward log-scores, their log scales, and the log partition function.

    Returns ``(alpha, beta, scale, log_z)``: (batch, seq_len, num_tags) twice, (batch, seq_len)
    float64 and (batch,) float64. The true forward score (paths over ``0..t`` ending in ``j``,
    emission at ``t`` included) is ``alpha[b, t, j]`` plus a per-position constant, and so is the
    true backward score (continuations after ``t`` from ``j``, end score included) with ``beta``;
    each is kept near zero at every position (the shifts summed in float64), so token marginals are
    ``softmax(alpha + beta)`` over the tags, exact at any length (see :func:`posteriors`).
    ``scale[b, t]`` is the log of the backward score's constant at ``t``: a span's probability needs
    its differences (:func:`span_marginals`). Every step is a logsumexp (a rescaled matrix product
    where that loses nothing), so any score gap is exact; where no path exists the result is
    ``-inf`` (``log_z``) and zero marginals, never NaN. Any float dtype in; float32 inside
    (float64 for float64).
    """
    emissions, shift = _shifted(_work(emissions), mask)
    start, end, transitions = start.to(emissions.dtype), end.to(emissions.dtype), transitions.to(emissions.dtype)
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
    a, a_log = _normalised(start.unsqueeze(0) + emissions[:, 0])  # shape: (batch, num_tags), (batch, 1)
    last, last_log = _normalised(end.unsqueeze(0).expand(batch, num_tags))
    b = last
    alphas, betas, a_logs, b_logs = [a], [b], [a_log], []
    steps, alives, goes = emissions.unbind(1), alive.unbind(1), goes_on.unbind(1)  # slices taken once
    full = bool(mask.all())  # no padding (one sentence, say): both recursions move every row on
    for t in range(1, seq_len):
        u = seq_len - 1 - t  # the backward recursion's position in the same step
        y, m = _log_step(torch.stack([a, steps[u + 1] + b]), exp_mats, t_max, mats)
        y_a, y_b = y.unbind(0)
        m_a, m_b = m.unbind(0)
        a = y_a + steps[t] if full else torch.where(alives[t], y_a + steps[t], a)
        b = y_b if full else torch.where(goes[u], y_b, last)
        alphas.append(a)
        betas.append(b)
        a_logs.append(m_a)  # masked below, all positions at once
        b_logs.append(m_b)
    betas.reverse()
    b_logs.reverse()
    zero = torch.zeros((), dtype=a_log.dtype, device=a_log.device)
    if seq_len > 1 and not full:  # a step's shift counts only where its recursion moved on
        a_logs = [a_log, torch.where(alive[:, 1:, 0], torch.cat(a_logs[1:], 1), zero)]
        b_logs = [torch.where(goes_on[:, : seq_len - 1, 0], torch.cat(b_logs, 1), zero)]
    elif seq_len > 1:
        b_logs = [torch.cat(b_logs, 1)]
    b_logs.append(last_log)  # position seq_len - 1: the end scores alone
    # the scales, summed in float64 once: beta's from the end back, alpha's in all
    scale = torch.cat(b_logs, 1).double().flip(1).cumsum(1).flip(1)  # shape: (batch, seq_len)
    a_total = torch.cat(a_logs, 1).double().sum(1)  # shape: (batch,)
    log_z = shift + a_total + last_log[:, 0].double() + torch.logsumexp(a + last, dim=1).double()
    return torch.stack(alphas, 1), torch.stack(betas, 1), scale, log_z


def posteriors(alpha: torch.Tensor, beta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token marginals from :func:`forward_backward`'s normalised scores, (batch, seq_len,
    num_tags): each position's ``softmax(alpha + beta)``, zero past each sentence's end and where no
    path exists."""
    joint = alpha + beta
    c = torch.logsumexp(joint, dim=2, keepdim=True)
    c = torch.where(torch.isfinite(c), c, torch.full_like(c, float("inf")))  # no path: exp(-inf) = 0
    return torch.exp(joint - c) * mask.unsqueeze(2).to(joint.dtype)


def marginals(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor
) -> torch.Tensor:
    """Posterior probability of every tag at every position, (batch, seq_len, num_tags);
    zero past each sentence's end."""
    alpha, beta, _, _ = forward_backward(emissions, mask, start, end, transitions)
    return posteriors(alpha, beta, mask)


def path_scores(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor,
    tags: torch.Tensor,
) -> torch.Tensor:
    """The score of given tag sequences, summed in float64 (exact at any length).
    tags: (batch, k, seq_len); returns (batch, k)."""
    em, lengths = emissions.double(), mask.long().sum(1)  # shape: (batch,)
    batch, k, seq_len = tags.shape
    e = em.unsqueeze(1).expand(batch, k, seq_len, em.shape[2]).gather(3, tags.unsqueeze(3)).squeeze(3)
    tr = transitions.double()[tags[:, :, :-1], tags[:, :, 1:]]  # shape: (batch, k, seq_len - 1)
    real = mask.unsqueeze(1)  # shape: (batch, 1, seq_len)
    inc = torch.where(real, e, torch.zeros_like(e))
    inc[:, :, 1:] += torch.where(mask[:, 1:].unsqueeze(1), tr, torch.zeros_like(tr))
    last = tags.gather(2, (lengths - 1).view(batch, 1, 1).expand(batch, k, 1)).squeeze(2)  # shape: (batch, k)
    return start.double()[tags[:, :, 0]] + inc.sum(2) + end.double()[last]


def span_marginals(
    emissions: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    scale: torch.Tensor,
    tags: torch.Tensor,
    spans: torch.Tensor,
    lengths: torch.Tensor,
    transitions: torch.Tensor,
    continuations: torch.Tensor,
) -> torch.Tensor:
    """Probability that each span's tokens carry exactly their labels in ``tags`` and that the
    chunk ends there.

    emissions: (batch, seq_len, num_tags); alpha, beta, scale from :func:`forward_backward`;
    tags: (batch, seq_len) the decoded path; spans: (n, 3) rows ``(sentence, start, end)`` with
    ``end`` exclusive; lengths: (batch,); continuations: (num_tags,) from
    :func:`nertool.data.tags.continuations` (-1: no label extends a chunk ending in this one).
    Returns (n,) probabilities in [0, 1]: alpha at the first token, the path inside, beta at the
    last, normalised at the first token; minus the paths that carry the chunk on past its end (IOB
    schemes). Sums along the span run in float64, so a span deep in a long sentence is as exact as
    one at its start.
    """
    emissions = _work(emissions).double()
    emissions = emissions - _position_max(emissions)  # as forward_backward shifts them
    alpha, beta, transitions = alpha.double(), beta.double(), transitions.double()
    # path score increments along the decoded path, shape: (batch, seq_len)
    inc = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
    inc[:, 1:] += transitions[tags[:, :-1], tags[:, 1:]]
    cum = inc.cumsum(1)
    r, a, e = spans[:, 0], spans[:, 1], spans[:, 2]  # shape: (n,) each
    first, last = tags[r, a], tags[r, e - 1]
    norm = torch.logsumexp(alpha[r, a] + beta[r, a], dim=1)  # shape: (n,): log_z at the first token
    base = alpha[r, a, first] + cum[r, e - 1] - cum[r, a] - norm - scale[r, a]
    p = torch.exp(base + beta[r, e - 1, last] + scale[r, e - 1])
    cont = continuations[last]  # shape: (n,)
    ok = (cont >= 0) & (e < lengths[r])
    c, nxt = cont.clamp(min=0), e.clamp(max=emissions.shape[1] - 1)
    extend = torch.exp(base + transitions[last, c] + emissions[r, nxt, c] + beta[r, nxt, c] + scale[r, nxt])
    p = p - torch.where(ok, extend, torch.zeros_like(extend))
    p = torch.where(torch.isfinite(norm), p, torch.zeros_like(p))  # no path at all
    return p.clamp(0.0, 1.0)


def nbest_viterbi(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best tag sequences of every sentence, best first.

    Returns ``(tags, scores)``: (batch, k, seq_len) and (batch, k) float64, each sequence's score
    summed exactly (:func:`path_scores`). A sentence with fewer than ``k`` possible sequences pads
    with score ``-inf``. Any float dtype in; float32 inside (float64 for float64), each step's
    scores shifted by their maximum.
    """
    work = _work(emissions)
    start_w, end_w, trans_w = start.to(work.dtype), end.to(work.dtype), transitions.to(work.dtype)
    batch, seq_len, num_tags = work.shape
    neg_inf = float("-inf")
    # score[b, j, r]: r-th best score of a prefix ending in tag j
    score = torch.full((batch, num_tags, k), neg_inf, device=work.device, dtype=work.dtype)
    score[:, :, 0] = start_w.unsqueeze(0) + work[:, 0]
    history: list[torch.Tensor] = []
    # on padded steps, point each (tag, rank) back at itself
    ident = (torch.arange(num_tags, device=work.device).view(1, num_tags, 1) * k
             + torch.arange(k, device=work.device).view(1, 1, k)).expand(batch, num_tags, k).to(torch.int32)
    for t in range(1, seq_len):
        # shape: (batch, prev_tag, rank, next_tag) -> (batch, prev_tag * rank, next_tag)
        cand = (score.unsqueeze(3) + trans_w.view(1, num_tags, 1, num_tags)).reshape(batch, num_tags * k, num_tags)
        best, idx = cand.topk(k, dim=1)  # shape: (batch, k, next_tag)
        best = best.transpose(1, 2) + work[:, t].unsqueeze(2)  # shape: (batch, next_tag, k)
        if t % 32 == 0:  # keep the scores near zero (the probabilities come from exact path scores)
            best = best - best.amax(dim=(1, 2), keepdim=True).clamp(min=-1e30)
        idx = idx.transpose(1, 2).to(torch.int32)  # shape: (batch, next_tag, k), flat (prev_tag * k + rank)
        keep = mask[:, t].view(batch, 1, 1)
        score = torch.where(keep, best, score)
        history.append(torch.where(keep, idx, ident))
    final = (score + end_w.view(1, num_tags, 1)).reshape(batch, num_tags * k)
    top, flat = final.topk(min(k, num_tags * k), dim=1)  # shape: (batch, k)
    tags = torch.zeros(batch, k, seq_len, dtype=torch.long, device=work.device)
    cur = flat  # flat (tag * k + rank) at the last position
    tags[:, :, seq_len - 1] = torch.div(cur, k, rounding_mode="floor")
    for t in range(seq_len - 2, -1, -1):
        cur = history[t].reshape(batch, num_tags * k).gather(1, cur).long()
        tags[:, :, t] = torch.div(cur, k, rounding_mode="floor")
    exact = path_scores(emissions, mask, start, end, transitions, tags)
    return tags, torch.where(torch.isfinite(top), exact, torch.full_like(exact, neg_inf))


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


@functools.cache
def scripted(fn: Callable) -> Callable:
    """``fn`` (one of this module's functions) compiled by TorchScript (outputs bit-identical to
    the eager function; 28% less time for a batch of 32 sentences: most of it is the per-step Python
    overhead of the recursions, BENCHMARKS.md 21.2), or ``fn`` itself where this torch cannot
    script it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 - a torch without TorchScript: the same function, eager
        return fn
