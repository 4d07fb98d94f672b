"""``nertool tune``: options to a tuning study, a line per trial, the summary table."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nertool.cli.common import err, user_errors


def say(text: str) -> None:
    """A trial's line on stderr (from any worker process)."""
    print(text, file=sys.stderr, flush=True)


@user_errors
def tune_cmd(
    corpus: Annotated[str, typer.Argument(metavar="TRAIN", help="Training file (CoNLL / CoNLL-U).")],
    dev: Annotated[Path, typer.Option(help="Development file: trials are compared on its span F1.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Tuning directory: the study, trials.csv, best.toml, importances.json, tune.png and best/ (a run directory).", file_okay=False)],
    test: Annotated[Optional[Path], typer.Option(help="Test file, scored once with the best model at the end.", exists=True, dir_okay=False)] = None,
    budget: Annotated[str, typer.Option(help="Wall-clock budget of the whole tune: 90s, 60m, 1.5h. An interrupted tune rerun with the same command goes on with what is left.")] = "60m",
    workers: Annotated[int, typer.Option("--workers", "-w", help="Trials run side by side, in processes sharing the cores.", min=1)] = 1,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (any RDB, e.g. postgresql://...); default: sqlite in --out.")] = None,
    embeddings: Annotated[Optional[str], typer.Option(help="'glove-6b-50d' or a GloVe/word2vec text file, for every trial.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML file with the settings the search starts from (its \\[data] section reads the corpus).", exists=True, dir_okay=False)] = None,
    trials: Annotated[Optional[int], typer.Option(help="Stop after this many trials (default: only the budget).", min=1)] = None,
    pruner: Annotated[str, typer.Option(help="median or hyperband: how poor trials are stopped early.")] = "median",
    seed: Annotated[int, typer.Option(help="Seed of the sampler and of every trial's training.")] = 42,
    trial_sentences: Annotated[int, typer.Option(help="Trials train on a seeded sample of at most this many training sentences (0: all); the best settings are then trained on all of them into OUT/best.", min=0)] = 3000,
):
    """Find the settings that suit a corpus within a time budget (Optuna: TPE sampling, pruning on
    each epoch's dev F1), then keep the best model in OUT/best.

    Example:
      nertool tune train.conll --dev dev.conll --test test.conll --budget 60m --out tuned/ --embeddings glove-6b-50d
    """
    from nertool.config import Config
    from nertool.training.tune import parse_budget, tune

    seconds = parse_budget(budget)
    base = Config.from_toml(config) if config else Config()
    if embeddings is not None:
        base = base.override({"model": {"embeddings": embeddings}})
    r = tune(corpus, str(dev), out, seconds, base, str(test) if test else None, workers, storage, trials, seed, pruner,
             report=say, trial_sentences=trial_sentences)
    t = Table(title=f"nertool tune: {out}", show_header=False)
    t.add_row("best trial", f"{r.best_trial} (dev F1 {100 * r.best_dev_f1:.2f}) -> {out / 'best'}")
    if r.test:
        t.add_row("test precision / recall / F1", " / ".join(f"{100 * r.test[k]:.2f}" for k in ("precision", "recall", "f1")))
    states = [row["state"] for row in r.trials]
    t.add_row("trials", ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))))
    t.add_row("settings", str(out / "best.toml"))
    if r.importances:
        t.add_row("importances", ", ".join(f"{k} {v:.2f}" for k, v in list(r.importances.items())[:6]))
    err.print(t)
