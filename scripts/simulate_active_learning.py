"""Does picking by the CRF's uncertainty pay? A simulation on a labelled corpus (its gold tags
stand in for the annotator): start from ``--start`` random training sentences; each round, train
a model (``nertool train``, a fixed budget), score dev and test, then add ``--step`` sentences
picked from the rest by each strategy (``nertool.tag.select``'s uncertainties, or random); until
``--until`` sentences. With ``--partial``, a ``least-confidence`` run where a picked sentence is
labelled only where the model was unsure (tokens whose tag probability is under ``--sure``, widened
to the gold chunks they touch; the rest ``?``), counting labelled tokens as the cost.

    .venv/bin/python scripts/simulate_active_learning.py C/train.txt C/valid.txt C/test.txt --out sim/ \\
        --embeddings glove-6b-50d --start 500 --step 500 --until 5000 --minutes 3 --partial

Writes ``sim/results.csv`` (strategy, round, sentences, labelled tokens, dev F1, test F1) and
``sim/curves.png``. Long: one training per strategy and round; run it in the background.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_conll(path: Path, sentences: list[tuple[list[str], list[str]]]) -> None:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in zip(toks, tags)) + "\n" for toks, tags in sentences),
                    encoding="utf-8")


def train_round(work: Path, labelled, dev: str, test: str, args) -> tuple[Path, float, float]:
    """Train on ``labelled`` into ``work/run``; (run, dev F1, test F1)."""
    data = work / "train.conll"
    write_conll(data, labelled)
    config = work / "sim.toml"
    config.write_text(settings_toml(args), encoding="utf-8")
    cmd = [sys.executable, "-m", "nertool", "train", str(data), "--dev", dev, "--out", str(work / "run"),
           "--config", str(config), "--force"] + (["--embeddings", args.embeddings] if args.embeddings else [])
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    f1 = []
    for split in (dev, test):
        r = subprocess.run([sys.executable, "-m", "nertool", "evaluate", str(work / "run"), split, "--json"],
                           check=True, capture_output=True, text=True)
        f1.append(100 * json.loads(r.stdout)["f1"])
    return work / "run", f1[0], f1[1]


def settings_toml(args) -> str:
    """The training config of every round: a wall-clock budget (``--minutes``) or a fixed number of
    epochs (``--epochs``, no early stop: the same work whatever else runs on the machine); with
    ``--same-settings``, the small-corpus settings for every round, so a round's corpus size does
    not switch the network at 2,048 sentences."""
    train = {"threads": args.threads, "seed": args.seed}
    model = {}
    if args.epochs:
        train.update(epochs=args.epochs, patience=0)
    else:
        train["max_minutes"] = args.minutes
    if args.same_settings:
        from nertool.training.budget import SMALL_CORPUS_SETTINGS

        model.update(SMALL_CORPUS_SETTINGS["model"])
        train.update(SMALL_CORPUS_SETTINGS["train"])
        if args.epochs:
            train["patience"] = 0
    toml = lambda d: "".join(f"{k} = {json.dumps(v)}\n" for k, v in d.items())  # noqa: E731
    return f"[train]\n{toml(train)}" + (f"[model]\n{toml(model)}" if model else "")


def pick(run: Path, pool: list[int], sentences, strategy: str, n: int, rng: random.Random) -> list[tuple[int, object]]:
    """The ``n`` pool sentences (indices into ``sentences``) the strategy picks, with their results."""
    from nertool.tag.options import TagOptions
    from nertool.tag.select import options_for, uncertainty
    from nertool.tag.tagger import Tagger

    tagger = Tagger.load(str(run))
    opts = options_for(strategy, TagOptions(scores=True))
    results = tagger.tag_sentences([sentences[i][0] for i in pool], opts)
    scored = sorted(((uncertainty(r, strategy, rng), -k, i, r) for k, (i, r) in enumerate(zip(pool, results))),
                    reverse=True)
    return [(i, r) for _, _, i, r in scored[:n]]


def partial_tags(gold: list[str], result, sure: float) -> list[str]:
    """Gold tags where the model was unsure (widened to whole gold chunks), ``?`` elsewhere."""
    from nertool.data.tags import UNKNOWN, chunks

    unsure = {i for i, p in enumerate(result.token_scores) if p < sure}
    for _, s, e, p in result.chunks:
        if p < sure:
            unsure.update(range(s, e))
    for _, s, e in chunks(gold, "IOB2"):
        if unsure & set(range(s, e)):
            unsure.update(range(s, e))
    return [g if i in unsure else UNKNOWN for i, g in enumerate(gold)]


def simulate(strategy: str, partial: bool, sentences, dev: str, test: str, out: Path, args,
             first: dict, report) -> None:
    """One strategy's rounds; ``first`` caches round 0 (the same random sentences for every
    strategy), ``report`` is called with each round's row."""
    rng = random.Random(args.seed)
    order = list(range(len(sentences)))
    rng.shuffle(order)
    labelled = {i: sentences[i][1] for i in order[: args.start]}
    pool = order[args.start :]
    name = f"{strategy}{'-partial' if partial else ''}"
    rnd = 0
    while True:
        work = out / name / f"round{rnd}"
        work.mkdir(parents=True, exist_ok=True)
        if rnd == 0 and first:
            run, dev_f1, test_f1 = first["result"]
        else:
            run, dev_f1, test_f1 = train_round(work, [(sentences[i][0], t) for i, t in labelled.items()], dev, test, args)
            if rnd == 0:
                first["result"] = (run, dev_f1, test_f1)
        cost = sum(sum(t != "?" for t in tags) for tags in labelled.values())
        report({"strategy": name, "round": rnd, "sentences": len(labelled), "labelled_tokens": cost,
                "dev_f1": round(dev_f1, 2), "test_f1": round(test_f1, 2)})
        if len(labelled) >= args.until or not pool:
            return
        picked = pick(run, pool, sentences, strategy, args.step, rng)
        chosen = {i for i, _ in picked}
        for i, r in picked:
            labelled[i] = partial_tags(sentences[i][1], r, args.sure) if partial else sentences[i][1]
        pool = [i for i in pool if i not in chosen]
        rnd += 1


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == name]
        ax[0].plot([r["sentences"] for r in mine], [r["test_f1"] for r in mine], marker="o", label=name)
        ax[1].plot([r["labelled_tokens"] for r in mine], [r["test_f1"] for r in mine], marker="o", label=name)
    ax[0].set_xlabel("training sentences")
    ax[1].set_xlabel("labelled tokens")
    for a in ax:
        a.set_ylabel("test F1")
        a.grid(alpha=0.3)
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("dev")
    ap.add_argument("test")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--embeddings", default="")
    ap.add_argument("--start", type=int, default=500)
    ap.add_argument("--step", type=int, default=500)
    ap.add_argument("--until", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget of each round")
    ap.add_argument("--epochs", type=int, default=0, help="a fixed number of epochs a round instead of --minutes")
    ap.add_argument("--same-settings", action="store_true", help="the small-corpus settings for every round")
    ap.add_argument("--full", action="store_true", help="also train once on every training sentence (the reference)")
    ap.add_argument("--strategies", default="least-confidence,margin,entropy,random",
                    help="in the order run; NAME-partial: NAME with partial labels; full: the reference")
    ap.add_argument("--partial", action="store_true", help="also a least-confidence run with partial labels")
    ap.add_argument("--sure", type=float, default=0.9, help="partial labels: tokens and spans at least this sure stay ?")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from nertool.data.conll import read_conll

    sentences = read_conll(args.train)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [(s.removesuffix("-partial"), s.endswith("-partial")) for s in args.strategies.split(",")]
    runs += ([("least-confidence", True)] if args.partial else []) + ([("full", False)] if args.full else [])
    rows, first = [], {}

    def report(row: dict) -> None:
        print(json.dumps(row), flush=True)
        rows.append(row)
        with open(args.out / "results.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    for strategy, partial in runs:
        if strategy == "full":
            work = args.out / "full"
            work.mkdir(parents=True, exist_ok=True)
            _, dev_f1, test_f1 = train_round(work, sentences, args.dev, args.test, args)
            report({"strategy": "full", "round": 0, "sentences": len(sentences),
                    "labelled_tokens": sum(len(t) for _, t in sentences), "dev_f1": round(dev_f1, 2),
                    "test_f1": round(test_f1, 2)})
        else:
            simulate(strategy, partial, sentences, args.dev, args.test, args.out, args, first, report)
    plot([r for r in rows if r["strategy"] != "full"], args.out / "curves.png")


if __name__ == "__main__":
    main()
