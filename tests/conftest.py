"""Shared fixtures: a tiny synthetic NER corpus written by the tests themselves."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"

PEOPLE = [["Anna", "Berg"], ["Tom"], ["Maria", "Lopez"], ["Kenji", "Sato"], ["Olga"], ["Peter", "van", "Dam"]]
PLACES = [["Paris"], ["New", "York"], ["Lagos"], ["Oslo"], ["Buenos", "Aires"], ["Kyoto"]]
ORGS = [["Acme", "Corp"], ["UNESCO"], ["Blue", "River", "Bank"], ["FIFA"], ["Nordic", "Rail"]]
TEMPLATES = [
    "{PER} visited {LOC} on Monday .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened an office in {LOC} .",
    "The talks between {ORG} and {PER} ended .",
    "In {LOC} , {PER} met {PER} .",
    "Shares of {ORG} rose 3.5 % .",
    "It rained all day .",
]


def make_sentences(n: int, seed: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    pools = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    out = []
    for _ in range(n):
        toks, tags = [], []
        for piece in rng.choice(TEMPLATES).split():
            if piece.startswith("{"):
                typ = piece[1:4]
                ent = rng.choice(pools[typ])
                toks += ent
                tags += [f"B-{typ}"] + [f"I-{typ}"] * (len(ent) - 1)
            else:
                toks.append(piece)
                tags.append("O")
        out.append((toks, tags))
    return out


def write_conll(path: Path, sentences, docstart: bool = True) -> Path:
    lines = ["-DOCSTART- -X- O", ""] if docstart else []
    for toks, tags in sentences:
        lines += [f"{t} X {g}" for t, g in zip(toks, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny")
    return {
        "train": write_conll(d / "train.txt", make_sentences(120, 1)),
        "dev": write_conll(d / "dev.txt", make_sentences(30, 2)),
        "test": write_conll(d / "test.txt", make_sentences(30, 3)),
    }


@pytest.fixture(scope="session")
def tiny_model(tiny_corpus, tmp_path_factory) -> Path:
    """A model trained for a few epochs on the tiny corpus (a few seconds on CPU)."""
    from nertool.config import Config
    from nertool.conll import load_corpus
    from nertool.train import train

    out = tmp_path_factory.mktemp("model") / "run"
    corpus = load_corpus(tiny_corpus["train"], tiny_corpus["dev"], tiny_corpus["test"])
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=32, char_hidden=16),
                 train=base.train.replace(epochs=8, batch_size=8, lr=0.01, patience=0, threads=1))
    train(corpus, cfg, out)
    return out
