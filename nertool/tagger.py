"""Tagger: load a model, tag raw text or token lists; spans with character offsets and CRF
confidences (marginal probabilities), optional n-best label sequences."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from . import tags as tagmod
from .batching import Encoder
from .checkpoint import ModelBundle
from .decoding import forward_backward, nbest_viterbi, safe_log_z, span_marginals, viterbi
from .errors import NertoolError
from .segment import sentences as split_text
from .text import Token


@dataclass(frozen=True)
class Span:
    """An entity (or chunk): ``doc.text[start:end] == text``; ``score`` is its CRF marginal
    probability (the probability, under the model, that exactly this span carries this label)."""

    text: str
    label: str
    start: int
    end: int
    score: float
    token_start: int
    token_end: int  # exclusive


@dataclass
class Doc:
    """A tagged text: tokens with offsets, one tag per token, spans, and per-token confidences."""

    text: str
    tokens: list[Token]
    tags: list[str]
    spans: list[Span]
    token_scores: list[float]  # marginal probability of each token's predicted tag
    sentences: list[tuple[int, int]] = field(default_factory=list)  # token ranges
    nbest: list[list[tuple[list[str], float]]] | None = None  # per sentence: (tags, probability)


@dataclass
class SentenceResult:
    tags: list[str]  # in the model's corpus scheme
    chunks: list[tuple[str, int, int, float]]  # (label, token_start, token_end, probability)
    token_scores: list[float]
    marginals: list[dict[str, float]] | None = None
    nbest: list[tuple[list[str], float]] | None = None


FEATURE_CACHE_ROWS = 200_000  # words whose character features a Tagger keeps


class Tagger:
    """Tags text with a trained model directory (or a bundled model name such as ``en``)."""

    def __init__(self, bundle: ModelBundle, device: str = "cpu", batch_size: int = 256, threads: int = 0, lang: str = "en"):
        self.bundle = bundle
        self.lang = lang  # for sentence splitting
        self.device = torch_device(device)
        self.batch_size = batch_size
        if threads:
            torch.set_num_threads(threads)
        self.model = bundle.model.to(self.device).eval()
        self.encoder = Encoder(bundle.words, bundle.chars, self.model.config.max_word_chars)
        self.scheme = bundle.scheme
        self.internal = bundle.internal_scheme
        inner = self.model.labels  # the model's own labels, in the internal scheme
        self.labels = tagmod.scheme_labels(inner, self.scheme)  # what tags come out as
        start, end, trans = self.model.transition_scores()
        self._trans = (start.detach(), end.detach(), trans.detach())
        self._continue = torch.tensor(tagmod.continuations(inner, self.internal), device=self.device)
        self._parsed = [tagmod.split_tag(l) for l in inner] if self.scheme != "none" else []
        self._o = inner.index("O") if "O" in inner else -1  # a sentence of O tags has no chunks
        self._out_tags = tagmod.id_decoder(inner, self.internal, self.scheme)
        names, index = tagmod.marginal_map(inner, self.internal, self.scheme)
        self._marginal_labels = names
        self._marginal_index = torch.tensor(index, device=self.device)
        # character features of every word seen so far, computed once per word type: rows of
        # _features (row 0: the empty word, then rows 1..len(_feature_rows)) and the token -> row
        # map (the weights never change)
        self._feature_rows: dict[str, int] = {}
        self._features: torch.Tensor | None = None

    @classmethod
    def load(cls, model: str = "en", device: str = "cpu", batch_size: int = 256, threads: int = 0) -> "Tagger":
        """Load a model directory, an exported file, or a bundled model by name."""
        from .loading import load

        torch_device(device)
        return cls(load(model, device), device, batch_size, threads)

    # -- public API ---------------------------------------------------------------------------
    def __call__(self, text: str, nbest: int = 0, doc_context: float = 0.0) -> Doc:
        return next(self.pipe([text], nbest=nbest, doc_context=doc_context))

    def pipe(self, texts: Iterable[str], batch_size: int | None = None, nbest: int = 0, scores: bool = True,
             doc_context: float = 0.0) -> Iterator[Doc]:
        """Tag a stream of texts, batching sentences across texts; yields one Doc per text.
        ``doc_context`` > 0 pulls the mentions of a name within a text towards one entity type
        (see :meth:`tag_sentences`)."""
        batch_size = batch_size or self.batch_size
        pending: list[tuple[str, list[list[Token]]]] = []
        n_sents = 0
        for text in texts:
            sents = split_text(text, self.lang)
            pending.append((text, sents))
            n_sents += len(sents)
            if n_sents >= batch_size:
                yield from self._docs(pending, nbest, scores, doc_context)
                pending, n_sents = [], 0
        if pending:
            yield from self._docs(pending, nbest, scores, doc_context)

    def tag_tokens(self, sentences: Sequence[Sequence[str]], nbest: int = 0, scores: bool = True) -> list[Doc]:
        """Tag pre-tokenised sentences; each Doc's text is the tokens joined by single spaces."""
        docs = []
        results = self.tag_sentences(sentences, nbest=nbest, scores=scores)
        for toks, r in zip(sentences, results):
            tokens, pos = [], 0
            for t in toks:
                tokens.append(Token(t, pos, pos + len(t)))
                pos += len(t) + 1
            text = " ".join(toks)
            docs.append(self._doc(text, [tokens], [r]))
        return docs

    def tag_sentences(
        self, sentences: Sequence[Sequence[str]], nbest: int = 0, scores: bool = True, marginals: bool = False,
        documents: Sequence[int] | None = None, doc_context: float = 0.0,
    ) -> list[SentenceResult]:
        """Low-level: tag token lists; results in input order. With ``documents`` (each
        sentence's document) and ``doc_context`` > 0, a first pass's marginals pull the mentions
        of a name within a document towards one entity type (:mod:`nertool.context`); tags,
        confidences and n-best then all come from the adjusted scores."""
        for i, s in enumerate(sentences):
            if len(s) == 0:
                raise NertoolError(f"sentence {i + 1} has no tokens")
            if not all(s):
                raise NertoolError(f"sentence {i + 1} has an empty token")
        from .context import check_weight

        check_weight(doc_context, self.scheme)
        context = doc_context > 0 and documents is not None
        items = self.encoder.encode(sentences)
        out: list[SentenceResult | None] = [None] * len(items)
        with torch.inference_mode():
            features = self._word_features({w for s in sentences for w in s})
            batches = self.encoder.batches(items, self.batch_size, max_tokens=self.batch_size * 50, rows=self._feature_rows)
            if context:
                batches, scored = self._context_scores(list(batches), features, sentences, documents, doc_context)
            for k, batch in enumerate(batches):
                results = self._tag_batch(batch.to(self.device), features, nbest, scores, marginals,
                                          scored[k] if context else None)
                for i, res in zip(batch.index, results):
                    out[i] = res
        return out  # type: ignore[return-value]

    def _context_scores(self, batches, features, sentences, documents, weight):
        """The batches (on the device) and their emissions with the document-context biases added."""
        from .context import adjusted_emissions

        batches = [b.to(self.device) for b in batches]
        scored = [(b, self.model.emissions_from_features(b.words, features, b.char_index, b.mask)) for b in batches]
        return batches, adjusted_emissions(self.model.labels, scored, sentences, documents, weight, self._trans)

    def _tag_batch(self, batch, features: torch.Tensor, nbest: int, scores: bool, marginals: bool,
                   em: torch.Tensor | None = None) -> list[SentenceResult]:
        """Decode one batch (on the tagger's device): Viterbi tags and chunks, and on demand the
        span and token marginals, the token posteriors and the n-best sequences. ``em``: the
        batch's emissions when already computed."""
        start, end, trans = self._trans
        if em is None:
            em = self.model.emissions_from_features(batch.words, features, batch.char_index, batch.mask)
        best, _ = viterbi(em, batch.mask, start, end, trans)
        lengths = batch.mask.sum(1).tolist()
        rows = best.tolist()
        chunk_lists = [self._chunks(rows[r][: lengths[r]]) for r in range(len(rows))]
        tok_p = span_p = post = None
        if scores or marginals or nbest:
            alpha, beta, log_z = forward_backward(em, batch.mask, start, end, trans)
            log_z = safe_log_z(log_z)
            post = torch.exp(alpha + beta - log_z.view(-1, 1, 1))  # shape: (batch, seq_len, num_tags)
            tok_p = post.gather(2, best.unsqueeze(2)).squeeze(2).tolist()
            spans = [(r, a, e) for r, cl in enumerate(chunk_lists) for _, a, e in cl]
            if spans:
                span_p = span_marginals(em, alpha, beta, log_z, best, torch.tensor(spans, device=em.device),
                                        batch.mask.sum(1), trans, self._continue).tolist()
        if marginals:  # summed into the output scheme's labels, shape: (batch, seq_len, num_output_labels)
            out_post = post.new_zeros(*post.shape[:2], len(self._marginal_labels))
            out_post.index_add_(2, self._marginal_index, post)
            out_post.clamp_(0.0, 1.0)
        if nbest:
            nb_tags, nb_scores = nbest_viterbi(em, batch.mask, start, end, trans, nbest)
            nb_rows, nb_probs = nb_tags.tolist(), torch.exp(nb_scores - log_z.unsqueeze(1)).tolist()
        k = 0
        results = []
        for r in range(len(rows)):
            n = lengths[r]
            chunks = []
            for label, a, e in chunk_lists[r]:
                chunks.append((label, a, e, span_p[k] if span_p is not None else 1.0))
                k += 1
            res = SentenceResult(self._out_tags(rows[r][:n]), chunks, tok_p[r][:n] if tok_p is not None else [1.0] * n)
            if marginals:
                res.marginals = [dict(zip(self._marginal_labels, p)) for p in out_post[r, :n].tolist()]
            if nbest:
                res.nbest = [
                    (self._out_tags(nb_rows[r][j][:n]), nb_probs[r][j])
                    for j in range(nbest)
                    if nb_probs[r][j] > 0 and not math.isnan(nb_probs[r][j])
                ]
            results.append(res)
        return results

    def clear_cache(self) -> None:
        """Forget the per-word character features computed so far (they are recomputed on demand)."""
        self._feature_rows.clear()
        self._features = None

    # -- internals ----------------------------------------------------------------------------
    def _word_features(self, words: set[str]) -> torch.Tensor:
        """The feature table, extended with the words not seen before: (rows, feature_dim)."""
        rows = self._feature_rows
        missing = _by_length(w for w in words if w not in rows)
        if rows and len(rows) + 1 + len(missing) > FEATURE_CACHE_ROWS:
            self.clear_cache()  # start afresh rather than grow without bound on an endless stream
            missing = _by_length(words)
        if self._features is None:  # row 0: the empty word that pads sentences (zeros)
            self._features = self.model.word_features(self.encoder.char_matrix([""]).to(self.device))
        used = len(rows) + 1
        n = used + len(missing)
        if n > self._features.shape[0]:
            grown = self._features.new_zeros(max(n, 2 * self._features.shape[0]), self._features.shape[1])
            grown[:used] = self._features[:used]
            self._features = grown
        for a, b in _length_runs(missing, self.encoder.max_chars, 4096):  # no padding characters
            self._features[used + a : used + b] = self.model.word_features(self.encoder.char_matrix(missing[a:b]).to(self.device))
        rows.update(zip(missing, range(used, n)))
        return self._features[:n]

    def _chunks(self, ids: list[int]) -> list[tuple[str, int, int]]:
        if self.scheme == "none" or ids.count(self._o) == len(ids):
            return []
        return tagmod.chunks_parsed([self._parsed[j] for j in ids], self.internal)

    def _docs(self, pending, nbest, scores, doc_context: float = 0.0) -> Iterator[Doc]:
        flat = [[t.text for t in s] for _, sents in pending for s in sents]
        documents = [k for k, (_, sents) in enumerate(pending) for _ in sents]
        results = iter(self.tag_sentences(flat, nbest=nbest, scores=scores, documents=documents,
                                          doc_context=doc_context) if flat else [])
        for text, sents in pending:
            yield self._doc(text, sents, [next(results) for _ in sents])

    def _doc(self, text: str, sents: list[list[Token]], results: list[SentenceResult]) -> Doc:
        tokens: list[Token] = []
        tags: list[str] = []
        spans: list[Span] = []
        probs: list[float] = []
        ranges = []
        for sent, r in zip(sents, results):
            base = len(tokens)
            for label, s, e, p in r.chunks:
                a, b = sent[s].start, sent[e - 1].end
                spans.append(Span(text[a:b], label, a, b, p, base + s, base + e))
            ranges.append((base, base + len(sent)))
            tokens.extend(sent)
            tags.extend(r.tags)
            probs.extend(r.token_scores)
        nb = [r.nbest for r in results] if results and results[0].nbest is not None else None
        return Doc(text, tokens, tags, spans, probs, ranges, nb)


def _by_length(words: Iterable[str]) -> list[str]:
    """``words`` sorted by length, then alphabetically."""
    out = sorted(words)
    out.sort(key=len)  # stable
    return out


def _length_runs(words: Sequence[str], max_chars: int, size: int) -> list[tuple[int, int]]:
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


def torch_device(name: str) -> torch.device:
    """The torch device named ``name`` (cpu, cuda, cuda:N); an error when CUDA is asked for but absent."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise NertoolError(f"unknown device {name!r}; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NertoolError(f"device {name!r} requested but CUDA is not available on this machine")
    return dev
