"""The one place where a batch's tag scores become results: Viterbi tags and chunks, and on demand
CRF span and token marginals, per-label posteriors and the n-best sequences. The Tagger, evaluation,
the worker engines and Ray all reach it through :meth:`nertool.tag.tagger.Tagger.tag_sentences`."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nertool.data import tags as tagmod
from nertool.model.decoding import (
    forbid,
    forward_backward,
    nbest_viterbi,
    posteriors,
    scripted,
    span_marginals,
    viterbi,
)
from nertool.tag.options import TagOptions


@dataclass
class SentenceResult:
    tags: list[str]  # in the model's corpus scheme
    chunks: list[tuple[str, int, int, float]]  # (label, token_start, token_end, probability)
    token_scores: list[float]
    marginals: list[dict[str, float]] | None = None
    nbest: list[tuple[list[str], float]] | None = None


@dataclass
class _Posteriors:
    token: list[list[float]]  # probability of each token's Viterbi tag, per row
    span: list[float] | None  # probability of each chunk, rows in order
    post: torch.Tensor  # shape: (batch, seq_len, num_tags)
    log_z: torch.Tensor  # shape: (batch,) float64


class Decoder:
    """Decodes emissions of one model; built once per model and device."""

    def __init__(self, labels: list[str], scheme: str, internal: str, transitions, device: torch.device):
        self.scheme, self.internal = scheme, internal
        # forbidden transitions as -inf: no forbidden path keeps any probability at any length
        self.trans = tuple(forbid(t.detach().float()) for t in transitions)
        self._continue = torch.tensor(tagmod.continuations(labels, internal), device=device)
        self._parsed = [tagmod.split_tag(label) for label in labels] if scheme != "none" else []
        self._o = labels.index("O") if "O" in labels else -1  # a sentence of O tags has no chunks
        self.out_tags = tagmod.id_decoder(labels, internal, scheme)
        names, index = tagmod.marginal_map(labels, internal, scheme)
        self.marginal_labels = names
        self._marginal_index = torch.tensor(index, device=device)
        self._viterbi, self._forward_backward, self._posteriors_of, self._span_marginals, self._nbest = map(
            scripted, (viterbi, forward_backward, posteriors, span_marginals, nbest_viterbi))

    def decode(self, em: torch.Tensor, mask: torch.Tensor, opts: TagOptions) -> list[SentenceResult]:
        """Results for each row of a batch. ``em``: (batch, seq_len, num_tags) tag scores (document
        context already added), any float dtype; ``mask``: (batch, seq_len) bool."""
        em = em.float()
        start, end, trans = self.trans
        best, _ = self._viterbi(em, mask, start, end, trans)  # shape: (batch, seq_len)
        lengths = mask.sum(1).tolist()
        rows = best.tolist()
        chunks = [self._chunks(rows[r][: lengths[r]]) for r in range(len(rows))]
        posteriors = self._posteriors(em, mask, best, chunks) if opts.needs_posteriors else None
        results = self._results(rows, lengths, chunks, posteriors)
        if opts.marginals and posteriors is not None:
            self._add_marginals(results, posteriors.post, lengths)
        if opts.nbest and posteriors is not None:
            self._add_nbest(results, em, mask, posteriors.log_z, lengths, opts.nbest)
        return results

    def _chunks(self, ids: list[int]) -> list[tuple[str, int, int]]:
        if self.scheme == "none" or ids.count(self._o) == len(ids):
            return []
        return tagmod.chunks_parsed([self._parsed[j] for j in ids], self.internal)

    def _posteriors(self, em, mask, best, chunks) -> _Posteriors:
        start, end, trans = self.trans
        alpha, beta, scale, log_z = self._forward_backward(em, mask, start, end, trans)
        post = self._posteriors_of(alpha, beta, mask)  # shape: (batch, seq_len, num_tags)
        token = post.gather(2, best.unsqueeze(2)).squeeze(2).clamp(0.0, 1.0).tolist()
        spans = [(r, a, e) for r, cl in enumerate(chunks) for _, a, e in cl]
        span = None
        if spans:
            span = self._span_marginals(em, alpha, beta, scale, best, torch.tensor(spans, device=em.device),
                                  mask.sum(1), trans, self._continue).tolist()
        return _Posteriors(token, span, post, log_z)

    def _results(self, rows, lengths, chunks, p: _Posteriors | None) -> list[SentenceResult]:
        k = 0
        results = []
        for r, n in enumerate(lengths):
            scored = []
            for label, a, e in chunks[r]:
                scored.append((label, a, e, p.span[k] if p is not None and p.span is not None else 1.0))
                k += 1
            tokens = p.token[r][:n] if p is not None else [1.0] * n
            results.append(SentenceResult(self.out_tags(rows[r][:n]), scored, tokens))
        return results

    def _add_marginals(self, results: list[SentenceResult], post: torch.Tensor, lengths: list[int]) -> None:
        # summed into the output scheme's labels, shape: (batch, seq_len, num_output_labels)
        out = post.new_zeros(*post.shape[:2], len(self.marginal_labels))
        out.index_add_(2, self._marginal_index, post)
        out.clamp_(0.0, 1.0)
        for r, res in enumerate(results):
            res.marginals = [dict(zip(self.marginal_labels, p)) for p in out[r, : lengths[r]].tolist()]

    def _add_nbest(self, results, em, mask, log_z, lengths, k: int) -> None:
        start, end, trans = self.trans
        tags, scores = self._nbest(em, mask, start, end, trans, k)  # scores: float64, exact
        valid = torch.isfinite(scores).tolist()  # -inf: fewer than k possible sequences
        probs = torch.exp(scores - log_z.unsqueeze(1)).clamp(0.0, 1.0).tolist()
        rows = tags.tolist()
        for r, res in enumerate(results):
            n = lengths[r]
            # every possible sequence is kept: in a long sentence even the best one's probability
            # can be below the smallest float64 (0.0), and it is still the best sequence
            res.nbest = [(self.out_tags(rows[r][j][:n]), probs[r][j]) for j in range(k) if valid[r][j]]
