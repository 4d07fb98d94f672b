"""Sentences worth labelling next, ranked by the CRF's own uncertainty (active learning).

Each sentence of an unlabelled pool is tagged once; its uncertainty (higher: more worth a
person's time) is, by strategy:

- ``least-confidence``: 1 - P(best sequence)^(1/n), the best sequence's probability per token
  (exact, from the CRF's partition function), so that long sentences are not picked for length;
- ``margin``: 1 - (P(best) - P(second best)), from the exact 2-best;
- ``entropy``: the mean over tokens of the entropy of the token's label marginals;
- ``random``: a seeded uniform draw (the baseline).

The pool streams: only the ``n`` best candidates so far are held (a heap), so a pool of any size
runs in memory bounded by ``n``. Ties are broken by the order in the pool; a seed makes ``random``
(and nothing else, which is deterministic anyway) repeatable.
"""
from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from nertool.data.inputs import Document
from nertool.errors import ConfigError
from nertool.tag.options import TagOptions

STRATEGIES = ("least-confidence", "margin", "entropy", "random")


@dataclass(frozen=True)
class Pick:
    """One picked sentence: where it came from, its tokens, the model's spans and its uncertainty."""

    uncertainty: float
    path: str
    doc: int
    sentence: int
    line: int
    text: str  # the sentence's own text (offsets below index it)
    tokens: tuple[tuple[str, int, int], ...]
    spans: tuple[tuple[str, int, int, float], ...]  # (label, token_start, token_end exclusive, probability)


def uncertainty(result, strategy: str, rng: random.Random) -> float:
    """The uncertainty of one tagged sentence (a :class:`~nertool.tag.decode.SentenceResult`)."""
    if strategy == "random":
        return rng.random()
    n = max(1, len(result.tags))
    if strategy == "entropy":
        return sum(-sum(p * math.log(p) for p in m.values() if p > 0) for m in result.marginals) / n
    probs = [p for _, p in result.nbest] + [0.0, 0.0]
    if strategy == "margin":
        return 1.0 - (probs[0] - probs[1])
    return 1.0 - probs[0] ** (1.0 / n)


def options_for(strategy: str, base: TagOptions) -> TagOptions:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    return base.with_(nbest=2 if strategy in ("least-confidence", "margin") else 0, marginals=strategy == "entropy")


def select(tagger, docs: Iterable[Document], n: int, strategy: str = "least-confidence", seed: int = 0,
           options: TagOptions | None = None, diverse: bool = False) -> list[Pick]:
    """The ``n`` most uncertain sentences of ``docs`` (split documents), most uncertain first.
    With ``diverse``, a sentence whose words overlap a more uncertain pick's by :data:`NEAR` or
    more (Jaccard, lower-cased) is passed over for the next one: near-duplicates are not all picked."""
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    if diverse:
        return _spread(select(tagger, docs, DIVERSE_POOL * n, strategy, seed, options), n)
    opts = options_for(strategy, options or tagger.options)
    rng = random.Random(seed)
    heap: list[tuple[float, int, Pick]] = []  # the n most uncertain so far; the least of them on top
    order = 0
    for doc, results in tagger.tag_documents(docs, opts):
        for k, (sent, r) in enumerate(zip(doc.sentences, results)):
            score = uncertainty(r, strategy, rng)
            order += 1
            if len(heap) < n or score > heap[0][0]:
                entry = (score, -order, _pick(score, doc, k, sent, r))
                (heapq.heappush if len(heap) < n else heapq.heapreplace)(heap, entry)
    return [p for _, _, p in sorted(heap, key=lambda e: (e[0], e[1]), reverse=True)]


NEAR = 0.7  # word-set overlap (Jaccard) from which two sentences count as near-duplicates
DIVERSE_POOL = 4  # with diverse, the n picks are spread over the 4n most uncertain


def _spread(ranked: list[Pick], n: int) -> list[Pick]:
    kept: list[tuple[Pick, set[str]]] = []
    for p in ranked:
        words = {t.lower() for t, _, _ in p.tokens}
        if all(len(words & w) < NEAR * len(words | w) for _, w in kept):
            kept.append((p, words))
            if len(kept) == n:
                break
    return [p for p, _ in kept]


def _pick(score: float, doc: Document, k: int, sent, r) -> Pick:
    a, b = sent[0].start, sent[-1].end
    line = doc.line + doc.text.count("\n", 0, a)
    return Pick(score, doc.path, doc.index, doc.first_sentence + k, line, doc.text[a:b],
                tuple((t.text, t.start - a, t.end - a) for t in sent),
                tuple((label, s, e, p) for label, s, e, p in r.chunks))


TASK_FORMATS = ("prodigy", "doccano", "labelstudio", "argilla")


def task_records(picks: list[Pick], strategy: str, fmt: str = "prodigy") -> Iterator[dict[str, Any]]:
    """The picks as tasks to import into an annotation tool, pre-annotated with the model's spans:
    Prodigy (spans with scores, ``meta``), doccano (``label``), Label Studio (``predictions`` with
    each span's score and the sentence's as the prediction's), Argilla (``prediction`` with scores)."""
    if fmt not in TASK_FORMATS:
        raise ConfigError(f"unknown task format {fmt!r}; expected one of {', '.join(TASK_FORMATS)}")
    if fmt == "prodigy":
        yield from prodigy_records(picks, strategy)
        return
    for p in picks:
        spans = [(p.tokens[s][1], p.tokens[e - 1][2], label, round(prob, 6)) for label, s, e, prob in p.spans]
        meta = {"path": p.path, "sentence": p.sentence, "line": p.line, "uncertainty": round(p.uncertainty, 6)}
        if fmt == "doccano":
            yield {"text": p.text, "label": [[a, b, label] for a, b, label, _ in spans], "meta": meta}
        elif fmt == "argilla":
            yield {"text": p.text, "tokens": [t for t, _, _ in p.tokens], "prediction": [[lab, a, b, sc] for a, b, lab, sc in spans],
                   "metadata": meta}
        else:
            yield {"data": {"text": p.text, **meta}, "predictions": [{"model_version": "nertool", "score": round(1 - p.uncertainty, 6), "result": [
                {"from_name": "label", "to_name": "text", "type": "labels", "score": sc,
                 "value": {"start": a, "end": b, "text": p.text[a:b], "labels": [lab]}} for a, b, lab, sc in spans]}]}


def prodigy_records(picks: list[Pick], strategy: str) -> Iterator[dict[str, Any]]:
    """Prodigy's JSONL task shape: ``text``, ``tokens``, ``spans`` (the model's suggestions, token
    ranges inclusive as Prodigy has them) and ``meta`` (where it came from, its uncertainty)."""
    for p in picks:
        yield {
            "text": p.text,
            "tokens": [{"text": t, "start": a, "end": b, "id": i, "ws": i + 1 < len(p.tokens) and p.tokens[i + 1][1] > b}
                       for i, (t, a, b) in enumerate(p.tokens)],
            "spans": [{"start": p.tokens[s][1], "end": p.tokens[e - 1][2], "label": label, "token_start": s,
                       "token_end": e - 1, "score": round(prob, 6)} for label, s, e, prob in p.spans],
            "meta": {"path": p.path, "doc": p.doc, "sentence": p.sentence, "line": p.line, "strategy": strategy,
                     "uncertainty": round(p.uncertainty, 6)},
        }
