"""Tagger: load a model, tag raw text or token lists; spans with character offsets and CRF
confidences (marginal probabilities), optional n-best label sequences."""
from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

import torch

from nertool.data import tags as tagmod
from nertool.data.inputs import Document, chunked, joined
from nertool.data.segment import sentences as split_text
from nertool.data.text import Token
from nertool.errors import NertoolError
from nertool.model.context import adjusted_emissions, check_weight
from nertool.model.encoding import Encoder
from nertool.runtime import torch_device
from nertool.store.bundle import ModelBundle
from nertool.tag.decode import Decoder, SentenceResult
from nertool.tag.features import FeatureCache
from nertool.tag.options import TagOptions


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


class Tagger:
    """Tags text with a trained model directory (or a bundled model name such as ``en``)."""

    def __init__(self, bundle: ModelBundle, device: str = "cpu", batch_size: int = 256, threads: int = 0, lang: str = "en"):
        self.bundle = bundle
        self.lang = lang  # for sentence splitting
        self.device = torch_device(device)
        self.batch_size = batch_size
        self.threads = threads  # torch threads during this tagger's calls (0: leave the process's count)
        self.model = bundle.model.to(self.device).eval()
        self.encoder = Encoder(bundle.words, bundle.chars, self.model.config.max_word_chars)
        self.scheme = bundle.scheme
        self.internal = bundle.internal_scheme  # the scheme of the model's own labels
        self.options = TagOptions(batch_size=batch_size, lang=lang)
        self.decoder = Decoder(self.model.labels, bundle.scheme, bundle.internal_scheme,
                               self.model.transition_scores(), self.device)
        self.labels = tagmod.scheme_labels(self.model.labels, self.scheme)  # what tags come out as
        self.features = FeatureCache(self.model, self.encoder, self.device)  # per word type
        # one call at a time: the feature cache grows in place and torch's thread pool is shared,
        # so concurrent calls from several threads would corrupt each other (issue 35)
        self._lock = threading.RLock()
        self.source = "model"  # what it was loaded from (Tagger.load sets it), for repr

    def __repr__(self) -> str:
        return (f"Tagger({self.source!r}, scheme={self.scheme!r}, labels={len(self.labels)}, "
                f"device={str(self.device)!r}, batch_size={self.batch_size})")

    @classmethod
    def load(cls, model: str = "en", device: str = "cpu", batch_size: int = 256, threads: int = 0) -> "Tagger":
        """Load a model directory, an exported file, or a bundled model by name. ``threads`` (when
        not 0) is torch's thread count while this tagger tags; the process's count is restored
        after each call."""
        from nertool.store.loading import load

        torch_device(device)
        tagger = cls(load(model, device), device, batch_size, threads)
        tagger.source = str(model)
        return tagger

    # -- public API ---------------------------------------------------------------------------
    def __call__(self, text: str, nbest: int = 0, doc_context: float = 0.0) -> Doc:
        return next(self.pipe([text], nbest=nbest, doc_context=doc_context))

    def pipe(self, texts: Iterable[str], batch_size: int | None = None, nbest: int = 0, scores: bool = True,
             doc_context: float = 0.0) -> Iterator[Doc]:
        """Tag a stream of texts, batching sentences across texts; yields one Doc per text.
        ``doc_context`` > 0 pulls the mentions of a name within a text towards one entity type
        (see :meth:`tag_sentences`)."""
        if isinstance(texts, str):
            raise NertoolError("pipe() takes an iterable of texts, got one string; use tagger(text) for one text")
        opts = self.options.with_(nbest=nbest, scores=scores, doc_context=doc_context,
                                  batch_size=batch_size or self.batch_size)
        docs = (Document("", k, 1, text, split_text(text, opts.lang)) for k, text in enumerate(texts))
        for d, results in self.tag_documents(docs, opts):
            yield _doc(d.text, d.sentences, results)

    def tag_documents(self, docs: Iterable[Document], options: TagOptions | None = None,
                      **changes) -> Iterator[tuple[Document, list[SentenceResult]]]:
        """Tag a stream of split documents in batches of about ``4 * batch_size`` sentences; yields
        each document with its sentences' results, in input order. The parts of one long document,
        and the documents of one CoNLL ``-DOCSTART-`` section, are one document for document context."""
        opts = (options or self.options).with_(**changes)
        for chunk in chunked(docs, opts.batch_size * 4, lambda d: len(d.sentences)):
            flat = [[t.text for t in s] for d in chunk for s in d.sentences]
            ids: dict = {}
            documents = [ids.setdefault(_document_key(d), len(ids)) for d in chunk for _ in d.sentences]
            results = iter(self.tag_sentences(flat, opts, documents=documents) if flat else [])
            for d in chunk:
                yield d, list(islice(results, len(d.sentences)))

    def tag_tokens(self, sentences: Sequence[Sequence[str]], nbest: int = 0, scores: bool = True) -> list[Doc]:
        """Tag pre-tokenised sentences; each Doc's text is the tokens joined by single spaces."""
        docs = []
        results = self.tag_sentences(sentences, nbest=nbest, scores=scores)
        for toks, r in zip(sentences, results):
            text, tokens = joined(list(toks))
            docs.append(_doc(text, [tokens], [r]))
        return docs

    def tag_sentences(self, sentences: Sequence[Sequence[str]], options: TagOptions | None = None, *,
                      documents: Sequence[int] | None = None, **changes) -> list[SentenceResult]:
        """Tag token lists: the one inference path of nertool. Results in input order.

        ``options`` (default: this tagger's), with ``changes`` (``nbest=``, ``scores=``,
        ``marginals=``, ``doc_context=``, ...) applied, says what to compute. With ``documents``
        (each sentence's document) and ``doc_context`` > 0, a first pass's marginals pull the
        mentions of a name within a document towards one entity type (:mod:`nertool.model.context`);
        tags, confidences and n-best then all come from the adjusted scores."""
        opts = options or self.options
        if changes:
            opts = opts.with_(**changes)
        _check_sentences(sentences)
        check_weight(opts.doc_context, self.scheme)
        with self._lock, _torch_threads(self.threads), _collector_paused():
            return self._tag_locked(sentences, opts, documents)

    def _tag_locked(self, sentences, opts: TagOptions, documents) -> list[SentenceResult]:
        items = self.encoder.encode(sentences)
        out: list[SentenceResult | None] = [None] * len(items)
        with torch.inference_mode():
            features = self.features.table({w for s in sentences for w in s})
            batches = [b.to(self.device) for b in self.encoder.batches(
                items, opts.batch_size, max_tokens=opts.batch_size * 50, rows=self.features.rows)]
            scores = [self._emissions(b, features, opts) for b in batches]
            if opts.doc_context > 0 and documents is not None:
                scores = adjusted_emissions(self.model.labels, list(zip(batches, scores)), sentences, documents,
                                            opts.doc_context, self.decoder.trans)
            for batch, em in zip(batches, scores):
                for i, res in zip(batch.index, self.decoder.decode(em, batch.mask, opts)):
                    out[i] = res
        return out  # type: ignore[return-value]

    def _emissions(self, b, features: torch.Tensor, opts: TagOptions) -> torch.Tensor:
        """The network's tag scores for batch ``b``: (batch, seq_len, num_tags); the network run on
        the batch padded to a number of rows that is a multiple of ``opts.row_multiple`` (a padding
        row: one padding token)."""
        rows = b.mask.shape[0]
        pad = -rows % opts.row_multiple
        if pad == 0:
            return self.model.emissions_from_features(b.words, features, b.char_index, b.mask)
        grow = lambda t: torch.nn.functional.pad(t, (0, 0, 0, pad))  # noqa: E731 - zeros, False: padding
        mask = grow(b.mask)
        mask[rows:, 0] = True  # a padding row is one token long (some networks refuse length 0)
        return self.model.emissions_from_features(grow(b.words), features, grow(b.char_index), mask)[:rows]

    def clear_cache(self) -> None:
        """Forget the per-word character features computed so far (they are recomputed on demand)."""
        with self._lock:
            self.features.clear()


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's (process-wide) thread count set to ``n`` for the block, then restored; 0: untouched."""
    before = torch.get_num_threads()
    if not n or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the block (reference counting still frees everything a
    call makes; tagging makes no cycles). Its full passes over every object of the process landed
    inside calls, a third of one call's time on a large heap (BENCHMARKS.md 20.2, 21.5)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _document_key(d: Document) -> tuple:
    return (d.path, "doc", d.index) if d.group is None else (d.path, "section", d.group)


def _check_sentences(sentences: Sequence[Sequence[str]]) -> None:
    if isinstance(sentences, str):
        raise NertoolError("expected a list of sentences (each a list of token strings), got one string; "
                           "for raw text use tagger(text) or tagger.pipe(texts)")
    for i, s in enumerate(sentences):
        if isinstance(s, str):
            raise NertoolError(f"sentence {i + 1} is a string, expected a list of tokens (e.g. {s.split()[:3]!r}); "
                               "for raw text use tagger(text) or tagger.pipe(texts)")
        if len(s) == 0:
            raise NertoolError(f"sentence {i + 1} has no tokens")
        if not all(s):
            raise NertoolError(f"sentence {i + 1} has an empty token")


def _doc(text: str, sents: list[list[Token]], results: list[SentenceResult]) -> Doc:
    """A Doc of ``text`` from its sentences' tokens and results."""
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
