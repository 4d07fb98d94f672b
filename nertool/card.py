"""The model card: a README.md in every saved model directory (data, scores, configuration,
intended use, limits), made from the directory's config.json alone."""
from __future__ import annotations

from typing import Any

from .tags import entity_types, scheme_labels


def _scores(scores: dict[str, Any]) -> list[str]:
    rows = []
    for split in ("dev", "test"):
        s = scores.get(split)
        if isinstance(s, dict) and "f1" in s:
            parts = [f"{k} {100 * s[k]:.2f}" for k in ("precision", "recall", "f1") if isinstance(s.get(k), float)]
            rows.append(f"- {split}: " + ", ".join(parts))
    return rows or ["- no held-out scores were recorded"]


def _bundled(config: dict[str, Any]) -> list[str]:
    b = config.get("bundled") if isinstance(config.get("bundled"), dict) else {}
    ref = config.get("pretrained_reference") if isinstance(config.get("pretrained_reference"), dict) else {}
    lines = [f"- {k}: {b[k]}" for k in ("recipe", "speed", "weights") if b.get(k)]
    if ref:
        lines.append(f"- pretrained vectors: read from the installed {ref.get('vectors')} package at load time "
                     f"({ref.get('stored_rows')} rows stored in this model; the package's rows are checked by sha256)")
    e = config.get("ensemble") if isinstance(config.get("ensemble"), dict) else {}
    if config.get("members"):
        lines.append(f"- an ensemble of {config['members']} networks (tag scores and CRF transitions averaged): "
                     + ", ".join(str(m) for m in e.get("members", [])))
    return ["## Recipe and speed", "", *lines, ""] if lines else []


def model_card(config: dict[str, Any], name: str = "nertool model") -> str:
    """Markdown describing the model of ``config`` (a model directory's config.json)."""
    m, corpus, scores = config.get("model", {}), config.get("corpus") or {}, config.get("scores") or {}
    labels = scheme_labels(config.get("labels", []), config.get("scheme", "none"))
    types = entity_types(config.get("labels", [])) if config.get("scheme") != "none" else labels
    sizes = corpus.get("sentences") or {}
    train = config.get("train") or {}
    lines = [
        f"# {name}",
        "",
        f"A Bi-LSTM-CRF sequence labeller made with {config.get('trained_with') or 'nertool'}: "
        f"{m.get('rnn', 'lstm')} {m.get('num_layers', '?')} x {m.get('hidden_size', '?')} units per direction, "
        f"character {m.get('char_encoder', '?')}, word embeddings {m.get('embeddings') or 'random'}, CRF over "
        f"{len(labels)} tags in {config.get('scheme', '?')} ({', '.join(types)}).",
        "",
        "## Data",
        "",
        *(f"- {k}: {corpus[k]}" for k in ("train", "dev", "test") if corpus.get(k)),
        *([f"- sentences: " + ", ".join(f"{k} {v}" for k, v in sizes.items())] if sizes else []),
        *([] if corpus else ["- not recorded"]),
        "",
        "## Scores (seqeval span micro averages, conlleval-compatible)",
        "",
        *_scores(scores),
        *([f"- best epoch {scores['best_epoch']}, stopped by {scores.get('stopped_by', '?')}"] if "best_epoch" in scores else []),
        "",
        *_bundled(config),
        "## Configuration",
        "",
        "- model: " + ", ".join(f"{k}={v}" for k, v in m.items()),
        *(["- training: " + ", ".join(f"{k}={v}" for k, v in train.items())] if train else []),
        "",
        "## Intended use",
        "",
        "Tagging text like the training data (same language, genre and tokenisation) with "
        "`nertool tag`, `nertool.Tagger` or the exported TorchScript file. Span scores are the CRF's "
        "marginal probabilities.",
        "",
        "## Limits",
        "",
        "- Scores hold for text like the test set; other domains, eras and spellings score lower.",
        "- Only the tags above are predicted; entity types not in the training data are never found.",
        "- The model reflects its training data, biases included; review outputs before decisions "
        "about people.",
        "- The training corpus's licence may restrict the model's use: check it.",
        "",
    ]
    return "\n".join(lines)
