"""The model card: a README.md in every saved model directory (data, scores, configuration,
intended use, limits), made from the directory's config.json alone."""
from __future__ import annotations

from typing import Any

from nertool.data.tags import entity_types, scheme_labels


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
        *(["- sentences: " + ", ".join(f"{k} {v}" for k, v in sizes.items())] if sizes else []),
        *([] if corpus else ["- not recorded"]),
        "",
        "## Scores (seqeval span micro averages, conlleval-compatible)",
        "",
        *_scores(scores),
        *([f"- best epoch {scores['best_epoch']}, stopped by {scores.get('stopped_by', '?')}"] if "best_epoch" in scores else []),
        "",
        *_bundled(config),
        *(["## Warnings", "", *(f"- {w}" for w in config["warnings"]), ""] if config.get("warnings") else []),
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


def summary_rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, value)`` rows that describe the model of ``c`` (a config.json) in a few lines, as
    ``nertool info`` prints them."""
    m = c["model"]
    rows = [("labels", " ".join(scheme_labels(c["labels"], c["scheme"]))),
            ("scheme", f"{c['scheme']} (internally {c['internal_scheme']})"),
            ("vocabulary", f"{c['n_words']} words, {c['n_chars']} characters")]
    ref = c.get("pretrained_reference")
    if isinstance(ref, dict):
        rows.append(("vectors", f"read from {ref.get('vectors')} at load time ({ref.get('stored_rows')} rows stored, "
                                "the rest checked by sha256)"))
    attention = f", self-attention ({m['attention_heads']} heads, {m['attention_combine']})" if m.get("attention") else ""
    rows.append(("network", f"{m['rnn']} {m['num_layers']}x{m['hidden_size']} per direction, char {m['char_encoder']}, "
                            f"embeddings {m['embeddings'] or 'random'} ({c['pretrained_dim'] or m['word_dim']}d){attention}"))
    rows += _corpus_and_score_rows(c) + _provenance_rows(c)
    rows.append(("nertool", c.get("nertool_version", "?")))
    return rows


def _corpus_and_score_rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    corpus = c.get("corpus") or {}
    if corpus:
        rows.append(("corpus", ", ".join(
            f"{k}: " + (", ".join(f"{split} {n}" for split, n in v.items()) if isinstance(v, dict) else str(v))
            for k, v in corpus.items() if v)))
    scores = c.get("scores") or {}
    if "best_epoch" in scores:
        rows.append(("training", f"best epoch {scores['best_epoch']}, stopped by {scores.get('stopped_by', '?')}"))
    for split, s in scores.items():
        if isinstance(s, dict):
            rows.append((f"{split} scores", ", ".join(f"{k} {100 * v:.2f}" for k, v in s.items() if isinstance(v, float))))
    return rows


def _provenance_rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    ens = c.get("ensemble") or {}
    if c.get("members") and isinstance(ens, dict):
        member_f1 = [f"{100 * s['f1']:.2f}" for s in ens.get("member_scores") or []
                     if isinstance(s, dict) and isinstance(s.get("f1"), float)]
        rows.append(("ensemble", f"{c['members']} networks, scores averaged: " + ", ".join(map(str, ens.get("members", [])))
                     + (f" (their test F1 {', '.join(member_f1)})" if member_f1 else "")))
    mach = c.get("machine") or {}
    if isinstance(mach, dict) and mach:
        threads = mach.get("threads", "?")
        rows.append(("trained on", f"{mach.get('cpu', '?')} ({mach.get('cpu_capability', '?')}), "
                                   f"{threads} thread{'' if threads == 1 else 's'}, "
                                   f"{mach.get('gpu') or mach.get('device', '?')}, torch {mach.get('torch', '?')}"))
    bundled = c.get("bundled") or {}
    for key in ("recipe", "speed"):
        if isinstance(bundled, dict) and bundled.get(key):
            rows.append((key, str(bundled[key])))
    return rows
