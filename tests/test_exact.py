"""Issue 35: the confidences the decoder reports are exact against enumeration of every tag
sequence (float32 within 1e-5, float64 within 1e-10), in [0, 1] and summing to 1, with forbidden
transitions, score gaps of 10,000, padding garbage and length 1; they stay exact in a sentence of
100,000 tokens, where n-best still answers; float16 and bfloat16 scores decode (float32 inside);
each decoding function compiles with TorchScript on its own."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from nertool.data.tags import is_valid
from nertool.model import decoding as D
from nertool.tag.decode import Decoder
from nertool.tag.options import TagOptions

LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
ALL = TagOptions(marginals=True, nbest=5)


def _model_scores(seed: int, dtype=torch.float32, scale: float = 3.0):
    """Start, end and transition scores as a trained model has them: random, plus NEG where the
    BIOES scheme forbids."""
    g = torch.Generator().manual_seed(seed)
    k = len(LABELS)
    raw = (torch.randn(k, generator=g) * scale, torch.randn(k, generator=g) * scale, torch.randn(k, k, generator=g) * scale)
    return tuple((r + b).to(dtype) for r, b in zip(raw, D.constraint_bias("BIOES", LABELS)))


def _brute(em, start, end, trans, n):
    """Every allowed sequence of length ``n`` with its score, in float64."""
    em, start, end, trans = em.double(), start.double(), end.double(), trans.double()
    out = []
    for p in itertools.product(range(len(LABELS)), repeat=n):
        if not is_valid([LABELS[i] for i in p], "BIOES"):
            continue
        s = start[p[0]] + end[p[-1]] + sum(em[i, j] for i, j in enumerate(p)) + sum(trans[a, b] for a, b in zip(p, p[1:]))
        out.append((s.item(), p))
    return out


def _expected(paths, best, chunks):
    """Token, span and label marginals and the n-best of one sentence, by enumeration."""
    z = torch.logsumexp(torch.tensor([s for s, _ in paths], dtype=torch.float64), 0).item()
    prob = [(math.exp(s - z), p) for s, p in paths]
    n = len(best)
    token = [sum(q for q, p in prob if p[i] == best[i]) for i in range(n)]
    spans = [sum(q for q, p in prob if p[a:e] == tuple(best[a:e])) for _, a, e in chunks]
    labels = [{lab: sum(q for q, p in prob if LABELS[p[i]] == lab) for lab in LABELS} for i in range(n)]
    top = sorted(prob, reverse=True)[:5]
    return token, spans, labels, top


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("seed", range(4))
def test_confidences_equal_enumeration(seed, dtype, tol):
    trans = _model_scores(seed, dtype)
    g = torch.Generator().manual_seed(100 + seed)
    lengths = [1, 2, 3, 5]
    em = (torch.randn(len(lengths), 5, len(LABELS), generator=g) * 4).to(dtype)
    if seed % 2:
        em[0, 0, 4] += 10000.0  # a score gap of 10,000
        em[3, 2, 1] -= 10000.0
    mask = torch.arange(5).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    em = torch.where(mask.unsqueeze(2), em, torch.full_like(em, 1e4) * torch.randn(em.shape, generator=g).to(dtype))
    decoder = Decoder(LABELS, "BIOES", "BIOES", trans, torch.device("cpu"))
    decoder.trans = tuple(D.forbid(t.to(dtype)) for t in trans)  # the decoder in this precision
    results = decoder.decode(em, mask, ALL) if dtype == torch.float32 else _decode64(decoder, em, mask)
    for b, n in enumerate(lengths):
        res = results[b]
        best = [LABELS.index(t) for t in res.tags]
        token, spans, labels, top = _expected(_brute(em[b], *trans, n), best, [c[:3] for c in res.chunks])
        assert res.token_scores == pytest.approx(token, abs=tol)
        assert [c[3] for c in res.chunks] == pytest.approx(spans, abs=tol)
        for got, want in zip(res.marginals, labels):
            assert got == pytest.approx(want, abs=tol)
            assert sum(got.values()) == pytest.approx(1.0, abs=tol) and all(0.0 <= v <= 1.0 for v in got.values())
        assert len(res.nbest) == min(5, len(top))
        for (tags, p), (q, path) in zip(res.nbest, top):
            assert p == pytest.approx(q, abs=tol) and 0.0 <= p <= 1.0
            assert tags == [LABELS[i] for i in path] or p == pytest.approx(q, abs=tol)  # ties may swap
        assert sum(p for _, p in res.nbest) <= 1.0 + tol


def _decode64(decoder: Decoder, em, mask):
    """The decoder's own steps, kept in float64 (Decoder.decode runs float32)."""
    start, end, trans = decoder.trans
    best, _ = D.viterbi(em, mask, start, end, trans)
    lengths = mask.sum(1).tolist()
    rows = best.tolist()
    chunks = [decoder._chunks(rows[r][: lengths[r]]) for r in range(len(rows))]
    post = decoder._posteriors(em, mask, best, chunks)
    results = decoder._results(rows, lengths, chunks, post)
    decoder._add_marginals(results, post.post, lengths)
    decoder._add_nbest(results, em, mask, post.log_z, lengths, 5)
    return results


def _long_sentence(n_tokens: int):
    """A sentence made of one 8-token block repeated: far from both ends every block has the same
    confidences, so a block near the end must score as one near the start."""
    g = torch.Generator().manual_seed(7)
    block = torch.randn(8, len(LABELS), generator=g) * 3
    block[2, 1] += 6.0  # a two-token person in each block
    block[3, 3] += 6.0
    em = block.repeat(n_tokens // 8, 1).unsqueeze(0)
    return em, torch.ones(1, em.shape[1], dtype=torch.bool)


def test_confidences_do_not_decay_in_a_sentence_of_100k_tokens():
    trans = _model_scores(3)
    em, mask = _long_sentence(100_000)
    decoder = Decoder(LABELS, "BIOES", "BIOES", trans, torch.device("cpu"))
    res = decoder.decode(em, mask, TagOptions(marginals=True))[0]
    near = next(c for c in res.chunks if c[1] >= 800)  # blocks 800 and 99,200 tokens in
    far = next(c for c in res.chunks if c[1] >= 99_200 and c[1] % 8 == near[1] % 8)
    assert (near[0], near[2] - near[1]) == (far[0], far[2] - far[1])
    assert far[3] == pytest.approx(near[3], abs=1e-5) and near[3] > 0.5
    t0, t1 = near[1], far[1]
    assert res.token_scores[t1 : t1 + 8] == pytest.approx(res.token_scores[t0 : t0 + 8], abs=1e-5)
    for m in res.marginals[-50:]:
        assert sum(m.values()) == pytest.approx(1.0, abs=1e-5)


def test_nbest_answers_at_every_length():
    trans = _model_scores(3)
    decoder = Decoder(LABELS, "BIOES", "BIOES", trans, torch.device("cpu"))
    for n in (8, 4_000, 40_000):
        em, mask = _long_sentence(n)
        res = decoder.decode(em, mask, TagOptions(nbest=3))[0]
        assert len(res.nbest) == 3, n  # it returned [] from about 3,900 tokens
        assert res.nbest[0][0] == res.tags
        assert all(0.0 <= p <= 1.0 for _, p in res.nbest)
        assert res.nbest[0][1] >= res.nbest[1][1] >= res.nbest[2][1]
        assert len({tuple(t) for t, _ in res.nbest}) == 3


def test_probabilities_never_exceed_one():
    """A token score of 1.0000038 was seen: float32 rounding of a sure path."""
    trans = _model_scores(1)
    em = torch.zeros(1, 30, len(LABELS))
    em[0, :, 0] = 50.0  # O everywhere, beyond doubt
    decoder = Decoder(LABELS, "BIOES", "BIOES", trans, torch.device("cpu"))
    res = decoder.decode(em, torch.ones(1, 30, dtype=torch.bool), ALL)[0]
    assert all(0.0 <= p <= 1.0 for p in res.token_scores)
    assert all(0.0 <= p <= 1.0 for _, p in res.nbest)
    assert all(0.0 <= v <= 1.0 for m in res.marginals for v in m.values())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores_decode_in_float32(dtype):
    trans = _model_scores(2)
    g = torch.Generator().manual_seed(5)
    em = (torch.randn(3, 6, len(LABELS), generator=g) * 4).to(dtype)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5], dtype=torch.bool)
    decoder = Decoder(LABELS, "BIOES", "BIOES", trans, torch.device("cpu"))
    half = decoder.decode(em, mask, ALL)
    full = decoder.decode(em.float(), mask, ALL)
    assert [r.tags for r in half] == [r.tags for r in full]
    assert [r.chunks for r in half] == [r.chunks for r in full]
    assert [r.nbest for r in half] == [r.nbest for r in full]
    # the functions themselves, given half scores and half transitions
    tags, _ = D.viterbi(em, mask, *(t.to(dtype) for t in trans))
    assert torch.equal(tags, D.viterbi(em.float(), mask, *trans)[0])
    assert torch.allclose(D.marginals(em, mask, *(t.to(dtype) for t in trans)).sum(2)[mask], torch.ones(10), atol=1e-5)
    assert D.nbest_viterbi(em, mask, *(t.to(dtype) for t in trans), 3)[0].shape == (3, 3, 6)


@pytest.mark.parametrize("name", ["viterbi", "forward_backward", "posteriors", "marginals", "span_marginals",
                                  "nbest_viterbi", "path_scores", "forbid"])
def test_each_decoding_function_compiles_with_torchscript_alone(name):
    scripted = torch.jit.script(getattr(D, name))
    trans = tuple(D.forbid(t) for t in _model_scores(0))
    em = torch.randn(2, 4, len(LABELS))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    fn = getattr(D, name)
    if name == "forbid":
        args = (_model_scores(0)[2],)
    elif name in ("viterbi", "forward_backward", "marginals"):
        args = (em, mask, *trans)
    elif name == "nbest_viterbi":
        args = (em, mask, *trans, 3)
    elif name == "posteriors":
        a, b, _, _ = D.forward_backward(em, mask, *trans)
        args = (a, b, mask)
    elif name == "path_scores":
        args = (em, mask, *trans, D.nbest_viterbi(em, mask, *trans, 2)[0])
    else:
        a, b, scale, _ = D.forward_backward(em, mask, *trans)
        best, _ = D.viterbi(em, mask, *trans)
        spans = torch.tensor([[0, 0, 2], [1, 1, 2]])
        cont = torch.full((len(LABELS),), -1)
        args = (em, a, b, scale, best, spans, mask.sum(1), trans[2], cont)
    got, want = scripted(*args), fn(*args)
    for x, y in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert torch.equal(x, y)


def test_the_same_text_scores_the_same_whatever_the_tagger_saw_before(tiny_model, tiny_corpus):
    from nertool.data.conll import read_conll
    from nertool.tag.tagger import Tagger

    other = [t for t, _ in read_conll(tiny_corpus["train"])][:120]
    text = [t for t, _ in read_conll(tiny_corpus["test"])]
    fresh = Tagger.load(str(tiny_model)).tag_sentences(text, marginals=True)
    used = Tagger.load(str(tiny_model))
    used.tag_sentences(other)
    again = used.tag_sentences(text, marginals=True)
    for a, b in zip(fresh, again):
        assert a.tags == b.tags and a.token_scores == pytest.approx(b.token_scores, abs=1e-9)
        assert [c[3] for c in a.chunks] == pytest.approx([c[3] for c in b.chunks], abs=1e-9)
