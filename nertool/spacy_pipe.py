"""A spaCy pipeline component: nertool's tagger on spaCy's own tokens, with CRF span probabilities.

    import spacy
    nlp = spacy.blank("en")                      # or any pipeline, trained or not
    nlp.add_pipe("nertool", config={"model": "en-fast"})
    doc = nlp("Angela Merkel met Emmanuel Macron in Paris.")
    [(e.text, e.label_) for e in doc.ents], doc.spans["nertool"].attrs["scores"]

The factory is registered through spaCy's entry points (``spacy_factories``), so a saved pipeline
loads with ``spacy.load`` wherever nertool is installed. Sentences: the pipeline's own when a
component before this one set them, else split after sentence-final punctuation. ``nlp.pipe``
tags the sentences of many docs in one batch, on the Tagger's one inference path.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from spacy.attrs import IDX, LENGTH
from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup, Token

from nertool.data.inputs import chunked
from nertool.tag.options import TagOptions
from nertool.tag.tagger import Tagger

KEY = "nertool"  # the span group that holds the spans and their scores
_ENDS = {".", "!", "?"}

if not Token.has_extension("nertool_marginals"):
    Token.set_extension("nertool_marginals", default=None)
if not Doc.has_extension("nertool_nbest"):
    Doc.set_extension("nertool_nbest", default=None)


@Language.factory("nertool", default_config={"model": "en-fast", "spans_key": None, "batch_size": 256,
                                             "marginals": False, "nbest": 0, "threads": 0})
def make_nertool(nlp: Language, name: str, model: str, spans_key: str | None, batch_size: int, marginals: bool,
                 nbest: int, threads: int) -> "NertoolComponent":
    return NertoolComponent(name, model, spans_key, batch_size, marginals, nbest, threads)


class NertoolComponent:
    """Writes ``doc.ents`` (or, with ``spans_key``, ``doc.spans[spans_key]`` only, keeping another
    NER's entities) and always ``doc.spans["nertool"]`` with ``attrs["scores"]``, each span's
    CRF marginal probability; optionally ``token._.nertool_marginals`` and ``doc._.nertool_nbest``."""

    def __init__(self, name: str, model: str, spans_key: str | None = None, batch_size: int = 256,
                 marginals: bool = False, nbest: int = 0, threads: int = 0):
        self.name, self.model, self.spans_key = name, model, spans_key
        self.opts = TagOptions(batch_size=batch_size, marginals=marginals, nbest=nbest)
        self.threads = threads
        self.tagger = Tagger.load(model, batch_size=batch_size, threads=threads)

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        """Tags the docs' sentences in calls of about ``4 * batch_size`` (the component's setting)
        sentences, as ``Tagger.pipe`` does, whatever number of docs spaCy's ``batch_size`` names:
        more sentences to a call sort into batches of like lengths, with less padding."""
        split = ((d, w, _sentences(d, w)) for d in docs for w in (_words(d),))  # each sentence's token indices
        for chunk in chunked(split, 4 * self.opts.batch_size, lambda item: len(item[2])):
            flat = [[words[i] for i in idx] for _, words, ss in chunk for idx in ss]
            results = iter(self.tagger.tag_sentences(flat, self.opts) if flat else [])
            for doc, _, ss in chunk:
                self._write(doc, [(idx, next(results)) for idx in ss])
                yield doc

    def _write(self, doc: Doc, tagged: list) -> None:
        spans, scores = [], []
        for idx, r in tagged:
            for label, s, e, p in r.chunks:
                spans.append(Span(doc, idx[s], idx[e - 1] + 1, label=label))
                scores.append(p)
        group = SpanGroup(doc, name=self.spans_key or KEY, spans=spans, attrs={"scores": scores})
        doc.spans[KEY] = group
        if self.spans_key:
            doc.spans[self.spans_key] = group
        else:
            doc.ents = spans
        if self.opts.marginals:
            for idx, r in tagged:
                for i, m in zip(idx, r.marginals):
                    doc[i]._.nertool_marginals = m
        if self.opts.nbest:
            doc._.nertool_nbest = [r.nbest for _, r in tagged]

    # -- serialisation: the model directory travels inside the pipeline's directory ------------
    def to_disk(self, path: str | Path, exclude: Any = ()) -> None:
        """The model directory (or exported file) copied into ``path/model``; a bundled model,
        which comes with nertool itself, is named in ``path/bundled.json`` instead."""
        from nertool.fileio import atomic_write_text
        from nertool.store.locate import BUNDLED_DIR, resolve_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        src = resolve_model(self.model).resolve()
        target = path / "model"
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        (path / "bundled.json").unlink(missing_ok=True)
        if src.parent == BUNDLED_DIR.resolve():
            atomic_write_text(path / "bundled.json", json.dumps({"model": src.name}) + "\n")
        elif src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("train_state*", "*.partial", ".nertool.lock"))
        else:
            shutil.copy2(src, target)

    def from_disk(self, path: str | Path, exclude: Any = ()) -> "NertoolComponent":
        path = Path(path)
        bundled = path / "bundled.json"
        self.model = json.loads(bundled.read_text(encoding="utf-8"))["model"] if bundled.exists() else str(path / "model")
        self.tagger = Tagger.load(self.model, batch_size=self.opts.batch_size, threads=self.threads)
        return self


def _words(doc: Doc) -> list[str]:
    """The texts of the doc's tokens, sliced from its text by offset (making a Token object per
    token costs more than tagging it)."""
    text = doc.text
    return [text[a : a + n] for a, n in doc.to_array([IDX, LENGTH]).tolist()]


def _sentences(doc: Doc, words: list[str]) -> list[list[int]]:
    """The token indices of each of the doc's sentences (``words``: its tokens' texts), white-space
    tokens left out: the pipeline's own sentences, else split after . ! ?"""
    if doc.has_annotation("SENT_START"):
        ranges = [(s.start, s.end) for s in doc.sents]
    else:
        ranges, start = [], 0
        for i, w in enumerate(words[:-1]):
            if w in _ENDS and words[i + 1] not in _ENDS:
                ranges.append((start, i + 1))
                start = i + 1
        ranges.append((start, len(words)))
    out = [[i for i in range(a, b) if not words[i].isspace()] for a, b in ranges]
    return [idx for idx in out if idx]
