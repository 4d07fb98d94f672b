"""Span scores with seqeval (conlleval-compatible default mode, or strict mode), and prediction
of whole corpora with a loaded model."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import tags as tagmod
from .checkpoint import ModelBundle

MODES = ("default", "strict")


def _seqeval_scheme(scheme: str):
    from seqeval import scheme as s

    return {"IOB1": s.IOB1, "IOB2": s.IOB2, "BIOES": s.IOBES}[scheme]


def score(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str, mode: str = "default") -> dict[str, Any]:
    """Micro precision, recall and F1 over spans, per-type scores with support, and token accuracy.

    ``scheme`` is the tags' scheme (``none`` for plain labels: only accuracy is meaningful, and
    precision = recall = F1 = accuracy). ``mode`` is seqeval's: ``default`` matches conlleval.pl.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted sequences differ in shape")
    n = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    accuracy = correct / n if n else 0.0
    if scheme == "none":
        return {"precision": accuracy, "recall": accuracy, "f1": accuracy, "accuracy": accuracy, "per_type": {}}
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    kw: dict[str, Any] = {"zero_division": 0}
    if mode == "strict":
        kw.update(mode="strict", scheme=_seqeval_scheme(scheme))
    g, p = [list(x) for x in gold], [list(x) for x in pred]
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
            device: str = "cpu") -> list[list[str]]:
    """Viterbi tags of every sentence, in the corpus's own scheme, computed on ``device``."""
    from .tagger import Tagger

    was_training = bundle.model.training
    try:
        return [r.tags for r in Tagger(bundle, device=device, batch_size=batch_size).tag_sentences(sentences, scores=False)]
    finally:
        bundle.model.train(was_training)


def evaluate(bundle: ModelBundle, sentences, mode: str = "default", batch_size: int = 512,
             device: str = "cpu") -> dict[str, Any]:
    """Score a model on labelled sentences ``[(tokens, tags), ...]`` in the corpus's scheme."""
    pred = predict(bundle, [t for t, _ in sentences], batch_size, device)
    return score([g for _, g in sentences], pred, bundle.scheme, mode)


def evaluate_file(
    model: str,
    data: str,
    *,
    mode: str = "default",
    fmt: str = "auto",
    token_column: int = 0,
    tag_column: int = -1,
    tag_field: str = "upos",
    encoding: str = "utf-8",
    batch_size: int = 512,
) -> dict[str, Any]:
    """Load a model and score it on a labelled file; predictions are compared in the file's scheme."""
    from . import conll
    from .export import load_any

    bundle = load_any(model)
    check = bundle.scheme != "none"
    sents = conll.read_file(data, fmt, token_column, tag_column, tag_field, encoding, check_tags=check)
    if not sents:
        from .errors import DataFormatError

        raise DataFormatError(data, None, "no sentences found")
    scheme = conll.check_scheme(sents, "auto" if check else "none", data)
    if check and scheme != bundle.scheme:
        # e.g. an IOB2 model scored on an IOB1 file: compare in the file's scheme
        sents = [(t, tagmod.convert(g, scheme, bundle.scheme)) for t, g in sents]
    result = evaluate(bundle, sents, mode, batch_size)
    result["sentences"] = len(sents)
    result["tokens"] = sum(len(t) for t, _ in sents)
    return result
