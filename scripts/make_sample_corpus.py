"""Write corpora/sample/{train,dev,test}.conll: a small synthetic English NER corpus (IOB2,
PER/LOC/ORG) generated from templates, for the quick start and the tests. Deterministic.

    python scripts/make_sample_corpus.py
"""
from __future__ import annotations

import random
from pathlib import Path

PEOPLE = [["Anna", "Berg"], ["Tom"], ["Maria", "Lopez"], ["Kenji", "Sato"], ["Olga"], ["Peter", "van", "Dam"],
          ["Amara", "Okafor"], ["Lucas"]]
PLACES = [["Paris"], ["New", "York"], ["Lagos"], ["Oslo"], ["Buenos", "Aires"], ["Kyoto"], ["Cape", "Town"]]
ORGS = [["Acme", "Corp"], ["UNESCO"], ["Blue", "River", "Bank"], ["FIFA"], ["Nordic", "Rail"], ["Helix", "Labs"]]
TEMPLATES = [
    "{PER} visited {LOC} on Monday .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened an office in {LOC} .",
    "The talks between {ORG} and {PER} ended .",
    "In {LOC} , {PER} met {PER} .",
    "Shares of {ORG} rose 3.5 % .",
    "{PER} said {ORG} would hire 200 people .",
    "It rained all day .",
]
SIZES = {"train": (160, 1), "dev": (40, 2), "test": (40, 3)}


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


def main() -> None:
    root = Path(__file__).resolve().parents[1] / "corpora" / "sample"
    root.mkdir(parents=True, exist_ok=True)
    for split, (n, seed) in SIZES.items():
        lines = ["-DOCSTART- O", ""]
        for toks, tags in make_sentences(n, seed):
            lines += [f"{t} {g}" for t, g in zip(toks, tags)] + [""]
        (root / f"{split}.conll").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
