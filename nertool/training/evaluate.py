"""Span scores with seqeval (conlleval-compatible default mode, or strict mode), and prediction
of whole corpora with a loaded model."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nertool.config import EVAL_MODES, DataConfig
from nertool.data import conll
from nertool.data import tags as tagmod
from nertool.errors import ConfigError, DataFormatError
from nertool.store.checkpoint import ModelBundle


def _seqeval_scheme(scheme: str):
    from seqeval import scheme as s

    return {"IOB1": s.IOB1, "IOB2": s.IOB2, "BIOES": s.IOBES}[scheme]


def score(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str, mode: str = "default") -> dict[str, Any]:
    """Micro precision, recall and F1 over spans, per-type scores with support, and token accuracy.

    ``scheme`` is the tags' scheme (``none`` for plain labels: only accuracy is meaningful, and
    precision = recall = F1 = accuracy). ``mode`` is seqeval's: ``default`` matches conlleval.pl.
    """
    if mode not in EVAL_MODES:
        raise ValueError(f"mode must be one of {EVAL_MODES}, got {mode!r}")
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted sequences differ in shape")
    n = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    accuracy = correct / n if n else 0.0
    if scheme == "none":
        return {"precision": accuracy, "recall": accuracy, "f1": accuracy, "accuracy": accuracy, "per_type": {}}
    from seqeval.metrics import (
        classification_report,
        f1_score,
        precision_score,
        recall_score,
    )

    kw: dict[str, Any] = {"zero_division": 0}
    if mode == "strict":
        kw.update(mode="strict", scheme=_seqeval_scheme(scheme))
    g, p = [list(x) for x in gold], [list(x) for x in pred]
    with warnings.catch_warnings():  # numpy warns averaging over no types (no gold spans): scores are 0
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(g, p, output_dict=True, **kw)
    per_type = {
        k: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"], "support": int(v["support"])}
        for k, v in report.items()
        if not k.endswith(" avg")
    }
    return {
        "precision": float(precision_score(g, p, **kw)),
        "recall": float(recall_score(g, p, **kw)),
        "f1": float(f1_score(g, p, **kw)),
        "accuracy": accuracy,
        "per_type": per_type,
    }


def predict(bundle: ModelBundle, sentences: Sequence[Sequence[str]], batch_size: int = 512,
            device: str = "cpu", documents: Sequence[int] | None = None, doc_context: float = 0.0) -> list[list[str]]:
    """Viterbi tags of every sentence, in the corpus's own scheme, through the Tagger's one
    inference path. The model must already be on ``device``; it is put in eval mode for the call
    and left in its former mode.

    With ``documents`` (each sentence's document) and ``doc_context`` > 0, the mentions of a name
    in a document are pulled towards one entity type (:mod:`nertool.model.context`, with weight
    ``doc_context``, from a first pass's marginals) before the final Viterbi."""
    from nertool.tag.tagger import Tagger

    was_training = bundle.model.training
    try:
        tagger = Tagger(bundle, device, batch_size)
        results = tagger.tag_sentences(sentences, scores=False, documents=documents, doc_context=doc_context)
    finally:
        bundle.model.train(was_training)
    return [r.tags for r in results]


def evaluate(bundle: ModelBundle, sentences, mode: str = "default", batch_size: int = 512,
             device: str = "cpu", documents: Sequence[int] | None = None, doc_context: float = 0.0,
             report: bool = False) -> dict[str, Any]:
    """Score a model on labelled sentences ``[(tokens, tags), ...]`` in the corpus's scheme
    (``documents``, ``doc_context``: see :func:`predict`). With ``report``, the errors by kind
    too (:func:`nertool.training.analysis.error_report`), under ``"report"``."""
    tokens, gold = [t for t, _ in sentences], [g for _, g in sentences]
    pred = predict(bundle, tokens, batch_size, device, documents, doc_context)
    result = score(gold, pred, bundle.scheme, mode)
    if report and bundle.scheme != "none":
        from nertool.training.analysis import error_report

        result["report"] = error_report(tokens, gold, pred, seen_in_training(bundle, tokens))
    return result


def seen_in_training(bundle: ModelBundle, sentences: Sequence[Sequence[str]]) -> list[list[bool]]:
    """For each token, whether its (normalised) word occurred in the model's training data."""
    words = bundle.words
    return [[2 <= i < words.n_tuned for i in row] for row in words.encode(sentences)]  # 0: padding, 1: unknown


def evaluate_file(model: str, path: str | Path, data: DataConfig = DataConfig(), mode: str = "default",
                  batch_size: int = 512, doc_context: float = 0.0, report: bool = False) -> dict[str, Any]:
    """Load a model and score it on a labelled file; predictions are compared in the file's scheme.
    ``doc_context`` > 0 pulls the mentions of a name within a document (``-DOCSTART-`` to
    ``-DOCSTART-``) towards one type, with that weight (see :func:`predict`)."""
    from nertool.store.loading import load

    return evaluate_bundle_file(load(model), path, data, mode, batch_size, doc_context, report)


def evaluate_bundle_file(bundle: ModelBundle, path: str | Path, data: DataConfig = DataConfig(), mode: str = "default",
                         batch_size: int = 512, doc_context: float = 0.0, report: bool = False) -> dict[str, Any]:
    """:func:`evaluate_file` for a loaded model."""
    from nertool.model.context import check_weight

    check_weight(doc_context, bundle.scheme)  # before the file is read
    check = bundle.scheme != "none"
    sents = conll.read_file(path, data, check_tags=check)
    if not sents:
        raise DataFormatError(path, None, "no sentences found")
    scheme = conll.check_scheme(sents, "auto" if check else "none", path)
    if check and scheme != bundle.scheme:
        # e.g. an IOB2 model scored on an IOB1 file: compare in the file's scheme
        sents = [(t, tagmod.convert(g, scheme, bundle.scheme)) for t, g in sents]
    documents = None
    if doc_context:
        if data.format == "conllu" or (data.format == "auto" and str(path).endswith(".conllu")):
            raise ConfigError("--doc-context reads documents from -DOCSTART- lines of CoNLL column files")
        documents = conll.document_ids(path, data.encoding)
        if len(documents) != len(sents):
            raise DataFormatError(path, None, "could not match sentences to documents")
    result = evaluate(bundle, sents, mode, batch_size, documents=documents, doc_context=doc_context, report=report)
    result["doc_context"] = doc_context
    if documents is not None:
        result["documents"] = len(set(documents))
    result["sentences"] = len(sents)
    result["tokens"] = sum(len(t) for t, _ in sents)
    return result
