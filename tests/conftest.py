"""Shared fixtures: a tiny synthetic NER corpus written by the tests themselves."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The real corpora (research licence, never in the repo); NERTOOL_CORPORA points elsewhere,
# e.g. on a GPU machine that has a copy of them.
SHARED = Path(os.environ.get("NERTOOL_CORPORA") or Path(__file__).resolve().parents[1].parent / "shared" / "corpora")

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"

# the command line as a user runs it, in a fresh process; library warnings are not errors there
CLI = [sys.executable, "-m", "nertool"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def cli_env() -> dict:
    """The environment of a CLI subprocess: this process's as it is now (a test may have changed
    PYTHONPATH, say), with library warnings off."""
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def run_cli(*args, stdin: str | None = None, env: dict | None = None, timeout: float = 300, **kw):
    """Run ``nertool ARGS`` as a subprocess; its CompletedProcess (text output captured)."""
    return subprocess.run([*CLI, *map(str, args)], input=stdin, capture_output=True, text=True,
                          env=env or cli_env(), timeout=timeout, **kw)


def popen_cli(*args, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start ``nertool ARGS`` as a subprocess (for tests that signal or kill it)."""
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([*CLI, *map(str, args)], env=env or cli_env(), **kw)


@pytest.fixture(scope="session")
def tiny_corpus() -> dict[str, Path]:
    """The project's own synthetic sample corpus (scripts/make_sample_corpus.py)."""
    return {split: SAMPLE / f"{split}.conll" for split in ("train", "dev", "test")}


@pytest.fixture(scope="session")
def tiny_model(tiny_corpus, tmp_path_factory) -> Path:
    """A model trained for a few epochs on the tiny corpus (a few seconds on CPU)."""
    from nertool.config import Config
    from nertool.data.conll import load_corpus
    from nertool.training.loop import train

    out = tmp_path_factory.mktemp("model") / "run"
    corpus = load_corpus(tiny_corpus["train"], tiny_corpus["dev"], tiny_corpus["test"])
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=32, char_hidden=16),
                 train=base.train.replace(epochs=8, batch_size=8, lr=0.01, patience=0, threads=1))
    train(corpus, cfg, out)
    return out


def wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds have passed; returns its last
    value (for tests that wait on a subprocess)."""
    import time

    deadline = time.monotonic() + timeout
    while not (ok := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return bool(ok)


def write_synthetic_corpus(path: Path, sentences: int, length: int = 24, seed: int = 0) -> Path:
    """A CoNLL file of ``sentences`` sentences of ``length`` tokens drawn from a few dozen words
    (so words repeat within a batch), tagged PER / LOC / O in IOB2."""
    import random

    rng = random.Random(seed)
    people = ["Anna", "Boris", "Chen", "Dmitri", "Erin", "Farah", "Goran", "Hiro"]
    places = ["Oslo", "Lima", "Quito", "Accra", "Hanoi", "Perth", "Turin", "Omsk"]
    other = ["the", "met", "in", "and", "visited", "with", "from", "today", "a", "city", "said", "of", "to", "near"]
    lines = []
    for _ in range(sentences):
        for _ in range(length):
            kind = rng.random()
            if kind < 0.15:
                lines.append(f"{rng.choice(people)} B-PER")
            elif kind < 0.3:
                lines.append(f"{rng.choice(places)} B-LOC")
            else:
                lines.append(f"{rng.choice(other)} O")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
