import itertools

import pytest
import torch
from torch.nn.utils import parametrize
from torchcrf import CRF

from nertool.data.tags import is_valid
from nertool.model.decoding import constraint_bias, viterbi
from nertool.model.network import _AddBias

LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC", "S-LOC"]


def seq_score(em, start, end, trans, path):
    s = start[path[0]] + em[0, path[0]]
    for a, b, t in zip(path, path[1:], range(1, len(path))):
        s = s + trans[a, b] + em[t, b]
    return s + end[path[-1]]


def brute_force_best(em, start, end, trans, allowed=None):
    n, k = em.shape
    best, arg = None, None
    for path in itertools.product(range(k), repeat=n):
        if allowed is not None and not allowed(path):
            continue
        s = seq_score(em, start, end, trans, path)
        if best is None or s > best:
            best, arg = s, path
    return list(arg), best


@pytest.mark.parametrize("seed", range(5))
def test_constrained_viterbi_equals_brute_force_over_allowed_sequences(seed):
    g = torch.Generator().manual_seed(seed)
    k = len(LABELS)
    lengths = [1, 2, 3, 4]
    em = torch.randn(len(lengths), max(lengths), k, generator=g) * 3
    start, end, trans = (torch.randn(k, generator=g), torch.randn(k, generator=g), torch.randn(k, k, generator=g))
    bs, be, bt = constraint_bias("BIOES", LABELS)
    mask = torch.tensor([[i < n for i in range(max(lengths))] for n in lengths])
    tags, scores = viterbi(em, mask, start + bs, end + be, trans + bt)
    for b, n in enumerate(lengths):
        valid = lambda p: is_valid([LABELS[i] for i in p], "BIOES")  # noqa: E731
        path, best = brute_force_best(em[b, :n], start, end, trans, valid)
        assert tags[b, :n].tolist() == path
        assert scores[b].item() == pytest.approx(best.item(), abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_batched_viterbi_equals_pytorch_crf_decode(seed):
    torch.manual_seed(seed)
    k, b, t = 6, 7, 9
    crf = CRF(k, batch_first=True)
    torch.nn.init.normal_(crf.transitions)
    em = torch.randn(b, t, k)
    lengths = torch.randint(1, t + 1, (b,))
    lengths[0] = t
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)
    ours, _ = viterbi(em, mask, crf.start_transitions, crf.end_transitions, crf.transitions)
    theirs = crf.decode(em, mask)
    for i, ref in enumerate(theirs):
        assert ours[i, : len(ref)].tolist() == ref


def test_constrained_crf_likelihood_normalises_over_allowed_sequences_only():
    torch.manual_seed(0)
    k, n = len(LABELS), 3
    crf = CRF(k, batch_first=True)
    for name, bias in zip(("start_transitions", "end_transitions", "transitions"), constraint_bias("BIOES", LABELS)):
        parametrize.register_parametrization(crf, name, _AddBias(bias))
    em = torch.randn(1, n, k)
    mask = torch.ones(1, n, dtype=torch.bool)
    total = 0.0
    for path in itertools.product(range(k), repeat=n):
        ll = crf(em, torch.tensor([path]), mask=mask, reduction="sum")
        p = ll.exp().item()
        if not is_valid([LABELS[i] for i in path], "BIOES"):
            assert p < 1e-30
        total += p
    assert total == pytest.approx(1.0, abs=1e-5)


def test_viterbi_is_scriptable():
    scripted = torch.jit.script(viterbi)
    em = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    s, e, tr = torch.randn(3), torch.randn(3), torch.randn(3, 3)
    a, _ = scripted(em, mask, s, e, tr)
    b, _ = viterbi(em, mask, s, e, tr)
    assert torch.equal(a, b)


def _brute_log_z_and_marginals(em, start, end, trans):
    """log Z and token marginals by enumerating every path, in float64."""
    n, k = em.shape
    scores = {p: seq_score(em.double(), start.double(), end.double(), trans.double(), p).item()
              for p in itertools.product(range(k), repeat=n)}
    log_z = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0).item()
    marg = torch.zeros(n, k, dtype=torch.float64)
    for p, s in scores.items():
        for t, j in enumerate(p):
            marg[t, j] += torch.exp(torch.tensor(s - log_z, dtype=torch.float64))
    return log_z, marg


@pytest.mark.parametrize("gap", [1.0, 100.0, 1000.0, 10000.0])
def test_forward_backward_exact_at_large_score_gaps(gap):
    from nertool.model.decoding import forward_backward, marginals

    g = torch.Generator().manual_seed(int(gap))
    k, n = 4, 4
    em = torch.randn(1, n, k, generator=g)
    em[0, :, 0] += gap  # one path far ahead of every other
    start, end = torch.randn(k, generator=g), torch.randn(k, generator=g)
    trans = torch.randn(k, k, generator=g) * gap / 10
    mask = torch.ones(1, n, dtype=torch.bool)
    _, _, _, log_z = forward_backward(em, mask, start, end, trans)
    want_z, want_m = _brute_log_z_and_marginals(em[0], start, end, trans)
    assert log_z.item() == pytest.approx(want_z, rel=1e-5, abs=1e-3)
    got = marginals(em, mask, start, end, trans)[0]
    assert torch.isfinite(got).all()
    assert got.double() == pytest.approx(want_m, abs=1e-4)


def test_no_possible_path_gives_minus_infinity_not_nan():
    from nertool.model.decoding import forward_backward, marginals

    k, n = 3, 3
    em = torch.zeros(1, n, k)
    start = torch.zeros(k)
    end = torch.full((k,), float("-inf"))  # no tag may end a sentence
    trans = torch.zeros(k, k)
    mask = torch.ones(1, n, dtype=torch.bool)
    alpha, beta, _, log_z = forward_backward(em, mask, start, end, trans)
    assert log_z.item() == float("-inf") and not torch.isnan(alpha).any() and not torch.isnan(beta).any()
    m = marginals(em, mask, start, end, trans)
    assert not torch.isnan(m).any() and (m == 0).all()


def test_a_sentence_alone_decodes_as_in_a_padded_batch():
    """Without padding the recursions skip their masking (a batch of one sentence, say): the
    results equal those of the same sentences padded into one batch."""
    from nertool.model.decoding import forward_backward

    torch.manual_seed(3)
    k, lengths = 6, [9, 4, 1, 7]
    em = torch.randn(len(lengths), max(lengths), k) * 3
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    start, end, trans = torch.randn(k), torch.randn(k), torch.randn(k, k)
    trans[0, 1] = float("-inf")
    tags, scores = viterbi(em, mask, start, end, trans)
    alpha, beta, scale, log_z = forward_backward(em, mask, start, end, trans)
    for r, n in enumerate(lengths):
        one = em[r : r + 1, :n]
        full = torch.ones(1, n, dtype=torch.bool)
        t1, s1 = viterbi(one, full, start, end, trans)
        a1, b1, c1, z1 = forward_backward(one, full, start, end, trans)
        assert t1[0].tolist() == tags[r, :n].tolist() and torch.allclose(s1[0], scores[r])
        assert torch.allclose(z1[0], log_z[r]) and torch.allclose(c1[0], scale[r, :n], atol=1e-5)
        assert torch.allclose(a1[0], alpha[r, :n], atol=1e-5) and torch.allclose(b1[0], beta[r, :n], atol=1e-5)


def test_scripted_decoding_is_bit_identical_to_eager():
    """The Decoder runs the TorchScript-compiled recursions: the same numbers as the eager ones,
    on padded batches of mixed lengths, with forbidden transitions."""
    from nertool.model import decoding as D

    g = torch.Generator().manual_seed(3)
    k = len(LABELS)
    start, end, trans = constraint_bias("BIOES", LABELS)
    start, end, trans = start + torch.randn(k, generator=g), end + torch.randn(k, generator=g), trans + torch.randn(k, k, generator=g)
    trans = D.forbid(trans)
    for batch, seq_len in ((1, 1), (1, 9), (7, 40), (32, 20)):
        em = torch.randn(batch, seq_len, k, generator=g) * 4
        lengths = torch.randint(1, seq_len + 1, (batch,), generator=g)
        lengths[0] = seq_len
        mask = torch.arange(seq_len).unsqueeze(0) < lengths.unsqueeze(1)
        pairs = [("viterbi", (em, mask, start, end, trans)), ("forward_backward", (em, mask, start, end, trans)),
                 ("nbest_viterbi", (em, mask, start, end, trans, 3))]
        for name, args in pairs:
            fn = getattr(D, name)
            eager, compiled = fn(*args), D.scripted(fn)(*args)
            assert D.scripted(fn) is not fn
            assert all(torch.equal(a, b) for a, b in zip(eager, compiled)), name
        alpha, beta, scale, _ = D.forward_backward(em, mask, start, end, trans)
        assert torch.equal(D.posteriors(alpha, beta, mask), D.scripted(D.posteriors)(alpha, beta, mask))
        tags = D.viterbi(em, mask, start, end, trans)[0]
        spans = torch.tensor([[r, 0, int(lengths[r])] for r in range(batch)])
        cont = torch.tensor([-1] * k)
        args = (em, alpha, beta, scale, tags, spans, lengths, trans, cont)
        assert torch.equal(D.span_marginals(*args), D.scripted(D.span_marginals)(*args))


def test_scripted_falls_back_to_the_eager_function(monkeypatch):
    from nertool.model import decoding as D

    def fail(fn):
        raise RuntimeError("no TorchScript here")

    D.scripted.cache_clear()
    monkeypatch.setattr(torch.jit, "script", fail)
    try:
        assert D.scripted(D.viterbi) is D.viterbi
    finally:
        D.scripted.cache_clear()
