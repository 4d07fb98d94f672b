"""``nertool tune``: the settings that suit a corpus, found within a time budget (Optuna).

TPE samples the settings; a pruner (median or Hyperband) stops trials whose dev F1 at an epoch
is poor against earlier trials' at that epoch, through the training loop's epoch hook; the study
lives in a real database (SQLite in the output directory by default, any RDB URL by option), so an
interrupted tune resumes with the same command and keeps every finished trial. The first trial is
the defaults, so the best is never a setting that lost to them on dev. At the end the best trial's
run directory becomes ``DIR/best`` (scored on test when a test file is given), with ``best.toml``,
``trials.csv``, ``importances.json`` and ``tune.png``.

A large corpus is searched at lower fidelity: each trial trains on the same seeded sample of at most
``trial_sentences`` training sentences (3,000 by default: a trial of the defaults then takes minutes,
not the hour a full-size one can) and is scored on the whole dev file; the best settings are then
trained once on the whole training file into ``DIR/best`` (that run is outside the search budget;
``[train] max_minutes`` of the base configuration caps it). Sizes, dropout and the learning rate
that win on 3,000 sentences are not always those that win on 15,000: a smaller sample is faster
and less faithful, ``--trial-sentences 0`` searches at full size.

The search space (every range, and why):

==================  ===========================================  ===============================================
parameter           range                                        why
==================  ===========================================  ===============================================
``optimizer``       adam, nadam, sgd                             Adam is the default; SGD with momentum is the
                                                                 classic Bi-LSTM-CRF choice and can win on
                                                                 small or noisy data
``lr_scale``        0.25 - 4 (log), times 0.002 (Adam, Nadam)    a 16-fold span around the rates known to work
                    or 0.015 (SGD)                               for each optimiser
``dropout``         0.1 - 0.6                                    0.5 is standard; small corpora may want more,
                                                                 large ones less
``dropout_mask``    token, sequence                              a mask per token, or one per sentence (locked):
                                                                 the kind of dropout matters for recurrent nets
``word_dropout``    0 - 0.15                                     training words replaced by the unknown word:
                                                                 how well unseen words are handled
``hidden_size``     64, 100, 128, 200, 256                       capacity against overfitting a small corpus
``num_layers``      1, 2                                         a second layer helps on CoNLL-2003, not always
``char_encoder``    cnn, lstm                                    character features decide unseen words
``char_hidden``     25, 50, 100                                  their size
``batch_size``      0 (the corpus rule), 4, 8, 16, 32            updates per epoch, and gradient noise
``lowercase``       true, false                                  cased word lookups help some languages
``patience``        4, 8, 12                                     when a run stops improving
``min_updates``     1000, 2000, 4000                             the budget that automatic epochs reach
==================  ===========================================  ===============================================
"""
from __future__ import annotations

import csv
import io
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nertool.config import Config
from nertool.errors import ConfigError, NertoolError
from nertool.fileio import atomic_write_text
from nertool.training import budget

STUDY = "nertool-tune"
BASE_LR = {"adam": 0.002, "nadam": 0.002, "sgd": 0.015}
SPACE: dict[str, tuple] = {
    "optimizer": ("adam", "nadam", "sgd"),
    "dropout_mask": ("token", "sequence"),
    "hidden_size": (64, 100, 128, 200, 256),
    "num_layers": (1, 2),
    "char_encoder": ("cnn", "lstm"),
    "char_hidden": (25, 50, 100),
    "batch_size": (0, 4, 8, 16, 32),
    "lowercase": (True, False),
    "patience": (4, 8, 12),
    "min_updates": (1000, 2000, 4000),
}
RANGES = {"lr_scale": (0.25, 4.0, True), "dropout": (0.1, 0.6, False), "word_dropout": (0.0, 0.15, False)}
MODEL_KEYS = ("dropout", "dropout_mask", "word_dropout", "hidden_size", "num_layers", "char_encoder", "char_hidden",
              "lowercase")
TRAIN_KEYS = ("optimizer", "batch_size", "patience", "min_updates")


@dataclass
class TuneResult:
    out_dir: Path
    best_trial: int
    best_dev_f1: float
    best_params: dict[str, Any]
    test: dict[str, Any] | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)


def parse_budget(text: str) -> float:
    """Seconds in ``90s``, ``60m``, ``1.5h`` or a plain number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = text.strip().lower()
    try:
        seconds = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ConfigError(f"--budget {text!r}: give a duration such as 90s, 60m or 1.5h") from None
    if seconds <= 0:
        raise ConfigError(f"--budget {text!r}: must be positive")
    return seconds


def config_for(params: dict[str, Any], base: Config) -> Config:
    """The configuration of a trial's parameters on top of ``base`` (whose epochs, 0 by default,
    follow the corpus and ``min_updates``)."""
    lr = BASE_LR[params["optimizer"]] * params["lr_scale"]
    return base.override({"model": {k: params[k] for k in MODEL_KEYS},
                          "train": {**{k: params[k] for k in TRAIN_KEYS}, "lr": lr}})


def default_params(base: Config) -> dict[str, Any]:
    """The parameters that give ``base`` itself (the first trial)."""
    m, t = base.model, base.train
    return {"optimizer": t.optimizer, "lr_scale": t.lr / BASE_LR[t.optimizer], "dropout": m.dropout,
            "dropout_mask": m.dropout_mask, "word_dropout": m.word_dropout, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "char_encoder": m.char_encoder, "char_hidden": m.char_hidden,
            "batch_size": t.batch_size, "lowercase": m.lowercase, "patience": t.patience, "min_updates": t.min_updates}


def suggest(trial) -> dict[str, Any]:
    params = {name: trial.suggest_categorical(name, list(choices)) for name, choices in SPACE.items()}
    for name, (low, high, log) in RANGES.items():
        params[name] = trial.suggest_float(name, low, high, log=log)
    return params


@dataclass
class Study:
    """What every worker of one tune shares: the corpus files, the base configuration, where the
    study and the trials live, and the deadline."""

    train: str
    dev: str
    base: Config
    out: Path
    storage: str
    deadline: float  # time.time() after which no trial starts
    max_trials: int | None = None
    seed: int = 42
    pruner: str = "median"
    threads: int = 1
    trial_sentences: int = 3000  # trials train on a seeded sample of this many sentences (0: all)
    n_train: int = 0  # training sentences in the file (counted by prepare)
    spent: float = 0.0  # seconds earlier invocations of this tune used
    started: float = field(default_factory=time.time)

    def record_time(self, study) -> None:
        study.set_user_attr("elapsed", round(self.spent + time.time() - self.started, 1))

    def open(self, worker: int = 0):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=self.seed + worker, n_startup_trials=6)
        pruner = (optuna.pruners.HyperbandPruner(min_resource=3) if self.pruner == "hyperband"
                  else optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=5))
        return optuna.create_study(study_name=STUDY, storage=self.storage, load_if_exists=True, direction="maximize",
                                   sampler=sampler, pruner=pruner)

    def trial_dir(self, number: int) -> Path:
        return self.out / "trials" / f"{number:04d}"


def prepare(spec: Study, report: Callable[[str], None]) -> None:
    """Check the corpus and the storage before the first trial: bad input stops here, in one line.
    A study already in the storage goes on (trials left running by an interrupted tune are marked
    failed, and their settings are tried again); the defaults are the first trial of a new one."""
    from optuna.trial import TrialState

    from nertool.data.conll import load_corpus
    from nertool.training.state import fingerprint

    corpus = load_corpus(spec.train, spec.dev, data=spec.base.data)
    spec.n_train = len(corpus.splits["train"])
    # the first trial is what `nertool train` would do on this corpus (small-corpus settings
    # included); every trial then trains exactly the settings it sampled
    spec.base = budget.small_corpus(spec.base, spec.n_train)[0].override({"train": {"small_corpus": "off"}})
    digest = fingerprint(corpus.sentences("train") + corpus.sentences("dev"))
    spec.out.mkdir(parents=True, exist_ok=True)
    study = spec.open()
    known = study.user_attrs.get("corpus")
    if known is not None and known != digest:
        raise NertoolError(f"{spec.out}: its study was run on other sentences; give the same files or a new --out")
    study.set_user_attr("corpus", digest)
    stale = [t for t in study.trials if t.state == TrialState.RUNNING]
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
    if stale:
        report(f"resuming: {len(stale)} interrupted trial(s) will run again")
    if not study.trials:
        study.enqueue_trial(default_params(spec.base))
    spec.spent = float(study.user_attrs.get("elapsed", 0.0))
    spec.deadline -= spec.spent  # the budget is the whole tune's, over every invocation
    done = [t for t in study.trials if t.state.is_finished()]
    if done:
        report(f"resuming the study in {spec.storage}: {len(done)} trial(s) already finished")


def run_worker(spec: Study, worker: int, report: Callable[[str], None]) -> None:
    """Run trials until the deadline (or the trial limit), reporting a line per trial."""
    import torch

    from nertool.data.conll import load_corpus

    torch.set_num_threads(spec.threads)
    corpus = trial_corpus(load_corpus(spec.train, spec.dev, data=spec.base.data), spec.trial_sentences, spec.seed)
    study = spec.open(worker)
    t0 = time.time()

    def objective(trial):
        return _trial(spec, corpus, trial)

    def after(study, trial):
        _after_trial(spec, study, trial, report, t0)

    while time.time() < spec.deadline:
        if spec.max_trials is not None and _started(study) >= spec.max_trials:
            break
        study.optimize(objective, n_trials=1, callbacks=[after], catch=(NertoolError,))


def _started(study) -> int:
    """Trials run or running (an enqueued trial waiting for a worker is not one yet)."""
    from optuna.trial import TrialState

    return sum(t.state != TrialState.WAITING for t in study.trials)


def trial_corpus(corpus, limit: int, seed: int):
    """``corpus`` with its training split cut to a seeded sample of ``limit`` sentences (kept in
    their order), or ``corpus`` itself when it has no more than that (or ``limit`` is 0)."""
    import random
    from dataclasses import replace

    import datasets

    n = len(corpus.splits["train"])
    if not limit or n <= limit:
        return corpus
    keep = sorted(random.Random(seed).sample(range(n), limit))
    splits = datasets.DatasetDict({**corpus.splits, "train": corpus.splits["train"].select(keep)})
    return replace(corpus, splits=splits)


def _trial(spec: Study, corpus, trial) -> float:
    import optuna

    from nertool.training.loop import train

    params = suggest(trial)
    left = max(0.5, (spec.deadline - time.time()) / 60)
    config = config_for(params, spec.base).override({"train": {"max_minutes": left, "seed": spec.seed,
                                                               "threads": spec.threads}})
    trial.set_user_attr("started", time.time())

    def prune(run, record):
        trial.report(record.get("dev_f1", 0.0), record["epoch"])
        return "pruned" if trial.should_prune() else None

    result = train(corpus, config, spec.trial_dir(trial.number), hooks=[prune], force=True)
    trial.set_user_attr("epochs", result.epochs_run)
    trial.set_user_attr("seconds", round(result.seconds, 1))
    trial.set_user_attr("stopped_by", result.stopped_by)
    if result.stopped_by in ("pruned", "time"):  # a trial the budget's end cut short is no finished trial
        raise optuna.TrialPruned()
    return result.best_dev_f1 or 0.0


def _after_trial(spec: Study, study, trial, report: Callable[[str], None], t0: float) -> None:
    """A line for the finished trial; the run directories of trials that are not the best go."""
    from optuna.trial import TrialState

    try:
        best = study.best_trial
    except ValueError:  # no trial completed yet
        best = None
    if trial.state == TrialState.COMPLETE:
        f1 = f"dev F1 {100 * trial.value:.2f}"
    elif trial.state == TrialState.PRUNED and trial.value is not None:
        f1 = f"pruned at {100 * trial.value:.2f}"  # its last reported dev F1
    else:
        f1 = trial.state.name.lower()
    best_text = f"best {100 * best.value:.2f} (trial {best.number})" if best is not None else "no best yet"
    minutes = trial.user_attrs.get("seconds", 0) / 60
    report(f"trial {trial.number:3d}  {f1:>14}  {best_text}  {minutes:5.1f} min  {_short(trial.params)}")
    spec.record_time(study)
    for t in study.trials:
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) and (best is None or t.number != best.number):
            shutil.rmtree(spec.trial_dir(t.number), ignore_errors=True)


def tune(train: str, dev: str, out: str | Path, budget: float, base: Config = Config(), test: str | None = None,
         workers: int = 1, storage: str | None = None, max_trials: int | None = None, seed: int = 42,
         pruner: str = "median", report: Callable[[str], None] = lambda text: None,
         trial_sentences: int = 3000) -> TuneResult:
    """Search settings for the corpus in ``train`` (selected on ``dev``) for ``budget`` seconds on
    ``workers`` processes; see the module's docstring. ``report`` gets a line per trial."""
    from nertool.runtime import available_cores

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if trial_sentences < 0:
        raise ConfigError(f"--trial-sentences must be 0 (all) or more, got {trial_sentences}")
    if pruner not in ("median", "hyperband"):
        raise ConfigError(f"unknown pruner {pruner!r}; expected median or hyperband")
    out = Path(out)
    spec = Study(str(train), str(dev), base, out, storage or f"sqlite:///{(out / 'study.db').resolve()}",
                 time.time() + budget, max_trials, seed, pruner, threads=max(1, available_cores() // workers),
                 trial_sentences=trial_sentences)
    prepare(spec, report)
    if workers == 1:
        run_worker(spec, 0, report)
    else:
        _run_processes(spec, workers, report)
    spec.record_time(spec.open())
    return finish(spec, test, report)


def _run_processes(spec: Study, workers: int, report: Callable[[str], None]) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # not fork: torch's threads do not survive it
    procs = [ctx.Process(target=run_worker, args=(spec, i, report), daemon=True) for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise NertoolError(f"{len(failed)} tuning worker(s) failed (exit codes {failed}); see the messages above")


def _short(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def finish(spec: Study, test: str | None, report: Callable[[str], None] = lambda text: None) -> TuneResult:
    """``DIR/best`` (the best trial's run, or its settings trained on the whole training file when
    trials saw a sample; scored on ``test``), best.toml, trials.csv, importances.json and tune.png."""
    import optuna

    study = spec.open()
    try:
        best = study.best_trial
    except ValueError:
        raise NertoolError("no trial finished within the budget: give a longer --budget") from None
    config = config_for(best.params, spec.base)
    best_dir = spec.out / "best"
    if best_dir.exists():
        shutil.rmtree(best_dir)
    _best_run(spec, best.number, config, best_dir, report)
    test_scores = _score_test(best_dir, test) if test else None
    atomic_write_text(spec.out / "best.toml", f"# nertool tune: trial {best.number}, dev F1 "
                                              f"{100 * best.value:.2f}\n" + config.to_toml())
    rows = _trial_rows(study)
    atomic_write_text(spec.out / "trials.csv", _csv(rows))
    importances: dict[str, float] = {}
    if sum(r["state"] == "complete" for r in rows) >= 2:
        try:
            importances = {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
        except (ValueError, RuntimeError):  # too few distinct values to tell
            importances = {}
    import json

    atomic_write_text(spec.out / "importances.json", json.dumps(importances, indent=1) + "\n")
    _plot(spec.out / "tune.png", rows)
    return TuneResult(spec.out, best.number, best.value, dict(best.params), test_scores, rows, importances)


def _best_run(spec: Study, number: int, config: Config, best_dir: Path, report: Callable[[str], None]) -> None:
    """The best trial's run directory as ``best_dir``; when trials saw a sample of the training
    file, a new run of the best settings on all of it (written aside, then renamed into place)."""
    from nertool.data.conll import load_corpus
    from nertool.training.loop import train

    if not 0 < spec.trial_sentences < spec.n_train:  # the trials saw every sentence
        shutil.copytree(spec.trial_dir(number), best_dir)
        return
    report(f"training trial {number}'s settings on all {spec.n_train:,} training sentences -> {best_dir}")
    corpus = load_corpus(spec.train, spec.dev, data=spec.base.data)
    partial = spec.out / "best.partial"
    shutil.rmtree(partial, ignore_errors=True)
    result = train(corpus, config.override({"train": {"seed": spec.seed}}), partial, force=True)
    report(f"best settings on all sentences: dev F1 {100 * (result.best_dev_f1 or 0):.2f} "
           f"({result.epochs_run} epochs, {result.seconds / 60:.1f} min)")
    partial.rename(best_dir)


def _score_test(run: Path, test: str) -> dict[str, Any]:
    from nertool.store.checkpoint import load_model, save_model
    from nertool.training.evaluate import evaluate_bundle_file

    bundle = load_model(run)
    scores = evaluate_bundle_file(bundle, test)
    bundle.meta.setdefault("scores", {})["test"] = {k: scores[k] for k in ("precision", "recall", "f1", "accuracy")}
    save_model(run, bundle)
    return scores


def _trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        started = t.user_attrs.get("started")
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     "dev_f1": None if t.value is None else round(100 * t.value, 2),
                     "seconds": t.user_attrs.get("seconds"), "epochs": t.user_attrs.get("epochs"),
                     "started": started, **{k: t.params.get(k) for k in [*SPACE, *RANGES]}})
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def _plot(path: Path, rows: list[dict[str, Any]]) -> bool:
    from nertool.training.plot import pyplot, save_png

    plt = pyplot()
    if plt is None:
        return False
    done = [r for r in rows if r["state"] == "complete" and r["dev_f1"] is not None and r["started"] is not None]
    if not done:
        return False
    t0 = min(r["started"] for r in done)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, x, label in ((axes[0], [r["trial"] for r in done], "trial"),
                         (axes[1], [(r["started"] + (r["seconds"] or 0) - t0) / 60 for r in done], "minutes")):
        ys = [r["dev_f1"] for r in done]
        ax.scatter(x, ys, color="tab:blue", label="trial")
        order = sorted(range(len(x)), key=lambda i: x[i])
        best, line = -math.inf, []
        for i in order:
            best = max(best, ys[i])
            line.append(best)
        ax.step([x[i] for i in order], line, where="post", color="tab:red", label="best so far")
        ax.set_xlabel(label)
        ax.set_ylabel("dev span F1 (%)")
        ax.legend(loc="lower right", fontsize="small")
    fig.suptitle("nertool tune: completed trials (pruned ones left out)")
    fig.tight_layout()
    save_png(fig, path)
    return True
