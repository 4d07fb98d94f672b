"""Training budgets that follow the corpus, and the check that a run learned something.

The rule (declared in BENCHMARKS.md before its runs, section 16):

- ``batch_size = 0`` (the default): ``n_train // 64`` sentences, at least 4 and at most 32, so a
  corpus of a few hundred sentences still gets dozens of updates an epoch (CoNLL-2003's 14,041
  sentences keep the batch of 32 chosen on it);
- ``epochs = 0`` (the default): enough epochs for ``min_updates`` updates (2,000), at least 40 (the
  epochs chosen on CoNLL-2003) and at most 200;
- patience (epochs without a better dev F1) only stops a run once it has made ``min_updates``
  updates: a small corpus whose dev F1 is still 0 after a few epochs is not given up on.

A ``batch_size`` or ``epochs`` given by the user is kept; one that makes fewer than
``min_updates`` updates is warned about.

Small corpora (under 2,048 training sentences, ``[train] small_corpus = "auto"``, the default)
also get other settings, for every key still at its default: :data:`SMALL_CORPUS_SETTINGS`, the
settings a 20-minute ``nertool tune`` found on 200 CoNLL-2003 sentences, adopted by the rule
declared in BENCHMARKS.md section 18 after they beat the defaults on mean dev F1 over Spanish,
Dutch and chunking subsamples of 200 and 1,000 sentences that did not choose them.
"""
from __future__ import annotations

import math
from dataclasses import replace

from nertool.config import Config

MIN_EPOCHS, MAX_EPOCHS = 40, 200
SMALL_CORPUS = 2048  # training sentences below which the small-corpus settings apply
SMALL_CORPUS_SETTINGS = {
    "model": {"hidden_size": 128, "num_layers": 1, "char_hidden": 25, "dropout": 0.19,
              "dropout_mask": "sequence", "word_dropout": 0.057},
    "train": {"optimizer": "nadam", "lr": 0.0048, "batch_size": 16, "patience": 12},
}


def small_corpus(config: Config, n_train: int, world: int = 1) -> tuple[Config, str | None]:
    """``config`` with the small-corpus settings for the keys left at their defaults, when the
    corpus has fewer than :data:`SMALL_CORPUS` training sentences; and a note saying which. The
    batch size is per process: ``world`` processes share the small-corpus batch."""
    if n_train >= SMALL_CORPUS or config.train.small_corpus == "off":
        return config, None
    plain = Config()
    changes: dict[str, dict] = {}
    for section, values in SMALL_CORPUS_SETTINGS.items():
        ours, default = getattr(config, section), getattr(plain, section)
        for key, value in values.items():
            if getattr(ours, key) == getattr(default, key):
                changes.setdefault(section, {})[key] = max(1, value // world) if key == "batch_size" else value
    if not changes:
        return config, None
    said = ", ".join(f"{k} {v}" for section in changes.values() for k, v in section.items())
    return config.override(changes), (f"a small corpus ({n_train} training sentences): {said} "
                                       "([train] small_corpus = \"off\" keeps the plain defaults)")


def auto_batch_size(n_train: int) -> int:
    """Sentences per batch for a corpus of ``n_train`` training sentences (one process)."""
    return max(4, min(32, n_train // 64))


def resolve(config: Config, n_train: int, world: int = 1) -> tuple[Config, list[str]]:
    """``config`` with its automatic batch size and epochs made concrete for ``n_train`` training
    sentences on ``world`` processes (the batch size is per process), and warnings about budgets
    the user set too small."""
    tc = config.train
    batch = tc.batch_size or max(1, auto_batch_size(n_train) // world)
    steps = max(1, math.ceil(n_train / (batch * world)))
    epochs = tc.epochs or min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(tc.min_updates / steps)))
    notes = []
    if tc.epochs and epochs * steps < tc.min_updates:
        enough = math.ceil(tc.min_updates / steps)
        notes.append(f"{epochs} epochs of {steps} batches give {epochs * steps} updates on {n_train} training "
                     f"sentences; fewer than {tc.min_updates} rarely train a useful model: leave --epochs out "
                     f"(it then follows the corpus) or give at least {enough}")
    return replace(config, train=replace(tc, batch_size=batch, epochs=epochs)), notes


def learned_nothing(gold: list[list[str]], pred: list[list[str]]) -> str | None:
    """A warning when predictions on dev hold no span at all, or spans of one type only where the
    gold has several; None when the model predicts what it should."""
    from nertool.training.analysis import spans

    gold_types = {s[0] for g in gold for s in spans(g)}
    pred_types = {s[0] for p in pred for s in spans(p)}
    advice = ("try more updates (leave --epochs and --batch-size to follow the corpus), pretrained vectors "
              "(--embeddings glove-6b-50d), more training sentences, or nertool tune")
    if gold_types and not pred_types:
        return f"the best model predicts no entity on dev (dev has {len(gold_types)} types): it learned nothing; {advice}"
    if len(gold_types) > 1 and len(pred_types) == 1:
        return f"the best model predicts one type only on dev ({next(iter(pred_types))}, of {len(gold_types)}); {advice}"
    return None
