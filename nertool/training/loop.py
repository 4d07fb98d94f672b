"""The training loop: :func:`train` wires :func:`start_run`, :func:`train_while_improving` (epochs,
then the hooks: evaluation and saving on the main process, or a pruner) and :func:`end_run`.
Returns a :class:`TrainResult`; reports through a callback; never prints."""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as st_load

from nertool import __version__
from nertool.config import Config, TrainConfig
from nertool.data.conll import Corpus, Sentence, load_corpus
from nertool.errors import NertoolError
from nertool.fileio import interrupts_deferred, locked
from nertool.model.encoding import Encoded, Encoder, length_buckets
from nertool.model.network import BiLstmCrf
from nertool.runtime import machine_record
from nertool.store import rundir
from nertool.store.checkpoint import ModelBundle, read_config, save_model
from nertool.tag.tagger import torch_device
from nertool.training import budget
from nertool.training.build import build_bundle, cut_long, encode_split, split_dev, trained_labels
from nertool.training.distributed import SOLO, Group
from nertool.training.evaluate import evaluate, predict
from nertool.training.optim import Optimisation, seed_everything
from nertool.training.plot import write_training_plot
from nertool.training.report import Reporter, SilentReporter
from nertool.training.state import LoopState, batch_for_world, check_resumable, fingerprint

if TYPE_CHECKING:
    import datasets


@dataclass
class TrainResult:
    out_dir: Path
    best_epoch: int
    best_dev_f1: float | None
    epochs_run: int
    seconds: float
    test: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "epochs"  # epochs | patience | time | pruned | interrupt
    warnings: list[str] = field(default_factory=list)  # budgets too small, a model that learned nothing






























class Diverged(NertoolError):
    """The training loss became infinite or NaN."""


class _Loss(torch.nn.Module):
    """The model's training loss as a ``forward``, for DistributedDataParallel to wrap."""

    def __init__(self, model: BiLstmCrf):
        super().__init__()
        self.model = model

    def forward(self, words, chars, char_index, mask, tags, allowed=None) -> torch.Tensor:
        loss = self.model.loss(words, chars, char_index, mask, tags, allowed)
        # a batch of one-token sentences uses no transition score, and DDP needs a gradient (here
        # zero) for every parameter in every step
        return loss + 0.0 * self.model.crf.transitions.sum()


def run_epoch(model: BiLstmCrf, o: Optimisation, encoder: Encoder, items: Sequence[Encoded], tc: TrainConfig,
              device: torch.device, epoch: int, reporter: Reporter, group: Group = SOLO,
              step: torch.nn.Module | None = None) -> dict[str, Any]:
    """One pass over the shuffled training batches; returns the epoch's record (mean loss, lr, time).

    With several processes (``group``), every rank draws the same length-bucketed batches of
    ``batch_size * world`` sentences and trains on its share of each (every world-th sentence);
    each share's loss is weighted so that the all-reduced gradient is that of the whole batch's
    mean loss, as one process with that batch size would compute it. ``step`` is the
    DistributedDataParallel-wrapped loss."""
    model.train()
    e0 = time.monotonic()
    total, n = 0.0, 0
    params = [p for g in o.opt.param_groups for p in g["params"]]
    if group.distributed:  # dropout masks: different on every rank, the same after a resume
        torch.manual_seed(tc.seed * 100_003 + epoch * 1_009 + group.rank)
    lengths = [len(e.words) for e in items]
    for whole in length_buckets(lengths, tc.batch_size * group.world, shuffle=True, rng=o.rng):
        part = whole[group.rank::group.world]
        # DDP averages gradients over ranks: scaling by world * share / batch makes that the batch mean
        weight = len(part) * group.world / len(whole)
        if not part:  # a last batch smaller than the world: this rank still joins the all-reduce
            part, weight = whole[:1], 0.0
        batch = encoder.collate([items[i] for i in part], part).to(device)
        o.opt.zero_grad(set_to_none=True)
        if step is None:
            loss = model.loss(batch.words, batch.chars, batch.char_index, batch.mask, batch.tags, batch.allowed)
        else:
            loss = step(batch.words, batch.chars, batch.char_index, batch.mask, batch.tags, batch.allowed)
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(f"training diverged in epoch {epoch} (loss {value}); try a lower --lr")
        (loss * weight if weight != 1.0 else loss).backward()
        if tc.clip:
            torch.nn.utils.clip_grad_norm_(params, tc.clip)
        o.opt.step()
        if o.ema is not None:
            o.ema.update()
        if weight:
            total += value * len(part)
            n += len(part)
        reporter.step(epoch, value, len(part) if weight else 0)
    o.sched.step()
    total, n = group.sum(total, n)
    return {"epoch": epoch, "loss": total / max(n, 1), "lr": o.opt.param_groups[0]["lr"],
            "epoch_seconds": round(time.monotonic() - e0, 2)}


def stop_reason(state: LoopState, tc: TrainConfig, seconds: float, updates: int | None = None) -> str | None:
    """Why training stops after this epoch (``patience`` or ``time``), or None to go on. Patience
    stops a run only once it has made ``tc.min_updates`` updates (``updates``: so far)."""
    if tc.patience and state.bad_epochs >= tc.patience and (updates is None or updates >= tc.min_updates):
        return "patience"
    if tc.max_minutes and seconds * (state.epoch + 1) / state.epoch > tc.max_minutes * 60:
        return "time"  # another epoch would overrun the budget
    return None


def evaluate_and_keep(bundle: ModelBundle, o: Optimisation, state: LoopState, record: dict[str, Any],
                      dev_sents: Sequence[Sentence] | None, tc: TrainConfig, device: str,
                      out: Path) -> tuple[bool, dict[str, torch.Tensor] | None]:
    """Score the averaged weights on dev; when they beat the best so far (or there is no dev
    set), save the model and return a copy of its state. Updates ``state`` and ``record``."""
    model = bundle.model
    if o.ema is not None:
        o.ema.swap()  # evaluate and save the averaged weights
    if o.avg is not None:
        o.avg.add()  # this epoch's checkpoint
        o.avg.swap()  # and the mean of the last ones in its place
    try:
        improved = True
        if dev_sents:
            dev = evaluate(bundle, dev_sents, batch_size=tc.eval_batch_size, device=device)
            record.update(dev_precision=dev["precision"], dev_recall=dev["recall"], dev_f1=dev["f1"])
            improved = dev["f1"] > state.best_f1
        record["best"] = improved
        if not improved:
            state.bad_epochs += 1
            return False, None
        state.best_f1, state.best_epoch, state.bad_epochs = record.get("dev_f1", -1.0), record["epoch"], 0
        bundle.meta["scores"] = {"dev": _short(record), "best_epoch": record["epoch"]}
        save_model(out, bundle)
        return True, {k: v.detach().clone() for k, v in model.state_dict().items()}
    finally:
        if o.avg is not None:
            o.avg.swap()
        if o.ema is not None:
            o.ema.swap()



def log_epoch(out: Path, state: LoopState, record: dict[str, Any], model: BiLstmCrf, o: Optimisation) -> None:
    """Add the epoch to the history, save the resumable state, metrics.jsonl and the plot."""
    state.history.append(record)
    state.save(out, model, o)
    write_training_plot(rundir.write_metrics(out, state.history), state.history, out.name)


def finish(bundle: ModelBundle, out: Path, test_sents: Sequence[Sentence] | None, stopped_by: str,
           tc: TrainConfig, device: str) -> dict[str, Any] | None:
    """Score the best model (already loaded) on test, record why training stopped, save it."""
    if "scores" not in bundle.meta:  # resumed: the scores of the saved best model
        bundle.meta["scores"] = read_config(out).get("scores", {})
    test_scores = None
    if test_sents:
        test_scores = evaluate(bundle, test_sents, batch_size=tc.eval_batch_size, device=device)
        bundle.meta["scores"]["test"] = {k: test_scores[k] for k in ("precision", "recall", "f1", "accuracy")}
    bundle.meta["scores"]["stopped_by"] = stopped_by
    save_model(out, bundle)
    return test_scores


STOP_REASONS = (None, "patience", "time", "pruned")

# called on the main process after each epoch's evaluation; a returned reason stops the run
EpochHook = Callable[["Run", dict[str, Any]], "str | None"]


@dataclass
class Run:
    """What one training run holds while its loop goes on."""

    bundle: ModelBundle
    config: Config
    out: Path
    where: torch.device
    device: str
    encoder: Encoder
    items: list[Encoded]
    o: Optimisation
    state: LoopState
    dev: list[Sentence] | None
    test: list[Sentence] | None
    reporter: Reporter
    group: Group
    t0: float
    step: torch.nn.Module | None = None  # the DistributedDataParallel-wrapped loss
    best: dict[str, torch.Tensor] | None = None  # the best weights so far (main process)

    @property
    def model(self) -> BiLstmCrf:
        return self.bundle.model

    @property
    def tc(self) -> TrainConfig:
        return self.config.train

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.items) / (self.tc.batch_size * self.group.world))


def train(
    corpus: "Corpus | datasets.DatasetDict | str | Path",
    config: Config,
    out_dir: str | Path,
    reporter: Reporter | None = None,
    corpus_info: dict[str, Any] | None = None,
    resume: bool = False,
    device: str = "cpu",
    force: bool = False,
    group: Group = SOLO,
    hooks: Sequence[EpochHook] = (),
) -> TrainResult:
    """Train on ``corpus['train']``, select the best epoch by dev span F1, save the best model to
    ``out_dir`` (with ``metrics.jsonl`` and a resumable training state after every epoch), and
    score it on ``corpus['test']`` when present. With ``resume``, continue from the state in
    ``out_dir``: the run ends as an uninterrupted one with the same seed would. ``device``
    (``cpu``, ``cuda``, ``cuda:N``) is where the model trains; the saved model is the same format.
    A new run needs a new or empty ``out_dir``; with ``force``, the files of a run in it are
    replaced as the new run writes them, and other files are left alone.

    ``group`` (:func:`nertool.training.distributed.init_group`) makes this one of several processes
    (torchrun): gradients are all-reduced, and rank 0 alone evaluates, saves and decides when to
    stop; with ``resume`` every rank reads the state in ``out_dir`` (a shared file system).
    ``hooks`` run on rank 0 after each epoch's evaluation and may stop the run (a pruner, say)."""
    if not isinstance(corpus, Corpus):  # a DatasetDict, or a training file's path
        corpus = load_corpus(corpus, data=config.data)
    # one training per run directory: a second one (a resume of a live run, a --force) is refused
    with locked(out_dir, "run directory") if group.is_main else contextlib.nullcontext():
        run = start_run(corpus, config, Path(out_dir), reporter or SilentReporter(), corpus_info, resume, device,
                        force, group)
        stopped_by = train_while_improving(run, [keep_best, *hooks] if group.is_main else [])
        return end_run(run, stopped_by)


def start_run(corpus: Corpus, config: Config, out: Path, reporter: Reporter, corpus_info: dict[str, Any] | None,
              resume: bool, device: str, force: bool, group: Group) -> Run:
    """Prepare the run directory, the model, its encoded training data, the optimiser and (when
    resuming) the saved state."""
    group.agree(lambda: rundir.prepare(out, resume, force) if group.is_main else None)
    saved = group.agree(lambda: LoopState.peek(out)) if resume else {}
    train_sents, dev_sents = split_dev(corpus, config.train)
    train_sents, cut_note = cut_long(train_sents)
    # the small-corpus settings, then the automatic batch size and epochs made concrete for this
    # corpus (a resume: for the run's processes)
    world = int(saved.get("processes", group.world))
    config, small = budget.small_corpus(config, len(train_sents), world)
    config, notes = budget.resolve(config, len(train_sents), world)
    asked = config  # the run's own configuration, which a resume checks against the saved one
    if resume:
        config = group.agree(lambda: batch_for_world(out, saved, config, group.world))
    _set_threads(config.train, group)
    rng = seed_everything(config.train.seed)
    t0 = time.monotonic()
    corpus_fp = {"train": fingerprint(train_sents), "dev": fingerprint(dev_sents)}
    for split, digest in corpus_fp.items():  # raises on every rank alike: no agree() around it
        group.check_same(f"{split} sentences", digest)
    labels, unseen = trained_labels(corpus, train_sents)
    notes += [note for note in (unseen, cut_note) if note]
    bundle = group.agree(lambda: build_bundle(config, train_sents, labels, corpus.scheme, reporter))
    where = torch_device(device)
    _describe(bundle, config, corpus_info, group, where)
    if small:
        reporter.message(f"note: {small}")
    for note in notes:
        reporter.message(f"warning: {note}")
    bundle.meta["warnings"] = notes
    model = bundle.model.to(where)
    encoder = Encoder(bundle.words, bundle.chars, config.model.max_word_chars)
    run = Run(bundle, config, out, where, device, encoder, encode_split(bundle, encoder, train_sents, corpus.labels),
              Optimisation.create(model, config.train, rng), LoopState(config=config.to_dict(), corpus=corpus_fp,
                                                                       processes=group.world),
              dev_sents, corpus.sentences("test") if "test" in corpus.splits else None, reporter, group, t0)
    if resume:
        _resume(run, saved, asked, corpus_fp)
    if group.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # the pretrained table is a constant buffer: never re-broadcast it
        run.step = DistributedDataParallel(_Loss(model), device_ids=[where.index] if where.type == "cuda" else None,
                                           broadcast_buffers=False)
    return run


def _set_threads(tc: TrainConfig, group: Group) -> None:
    if tc.threads:
        torch.set_num_threads(tc.threads)
    elif group.distributed and group.backend == "gloo":  # share the cores among this machine's ranks
        local = int(os.environ.get("LOCAL_WORLD_SIZE", group.world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def _describe(bundle: ModelBundle, config: Config, corpus_info: dict[str, Any] | None, group: Group,
              where: torch.device) -> None:
    bundle.meta.update(corpus=corpus_info or {}, train=config.train.to_dict(), data=config.data.to_dict(),
                       trained_with=f"nertool {__version__}", machine=machine_record(where))
    if group.distributed:
        bundle.meta["distributed"] = {"processes": group.world, "backend": group.backend,
                                      "global_batch_size": config.train.batch_size * group.world}


def _resume(run: Run, saved: dict[str, Any], asked: Config, corpus_fp: dict[str, str | None]) -> None:
    def load_state() -> LoopState:
        check_resumable(run.out, saved, asked, corpus_fp)  # before any tensor is loaded
        return LoopState.load(run.out, run.model, run.o, saved)

    state = run.group.agree(load_state)
    state.corpus, state.config, state.processes = corpus_fp, run.config.to_dict(), run.group.world
    state.stopped_by = None  # an extended run goes on
    run.state = state
    run.t0 -= state.elapsed
    run.reporter.message(f"resuming {run.out} after epoch {state.epoch}")
    if state.best_epoch and run.group.is_main:
        run.best = st_load(rundir.read_weights(run.out))


def train_while_improving(run: Run, hooks: Sequence[EpochHook]) -> str:
    """Train epoch after epoch; after each, the ``hooks`` run (on the main process) and rank 0
    decides for all whether to stop. Returns why training stopped."""
    tc, group = run.tc, run.group
    run.reporter.start(tc.epochs, run.steps_per_epoch)
    try:
        for epoch in range(run.state.epoch + 1, tc.epochs + 1):
            record = run_epoch(run.model, run.o, run.encoder, run.items, tc, run.where, epoch, run.reporter, group,
                               run.step)
            reason = None
            for hook in hooks:
                reason = hook(run, record) or reason
            if not group.is_main:
                run.state.epoch = epoch
                run.state.history.append(record)
            reason = STOP_REASONS[group.decide(STOP_REASONS.index(reason))]  # rank 0 decides for all
            if reason:
                return _stopped(run, reason)
        return _stopped(run, "epochs")
    except KeyboardInterrupt:
        return "interrupt"
    except Diverged as e:
        kept = f"; the best model so far (epoch {run.state.best_epoch}) is kept in {run.out}" if run.state.best_epoch else ""
        raise Diverged(f"{e}{kept}") from None


def _stopped(run: Run, reason: str) -> str:
    run.state.stopped_by = reason
    if run.group.is_main:
        run.state.save_json(run.out, run.o)  # a finished run is not resumed by mistake (one atomic file)
    return reason


def keep_best(run: Run, record: dict[str, Any]) -> str | None:
    """The main process's hook: score the epoch on dev, save the model when it is the best so
    far, log the epoch with the resumable state, report it; a stop reason from patience or time."""
    # Ctrl-C waits for the epoch's files: model, state and log always agree
    with interrupts_deferred():
        _, kept = evaluate_and_keep(run.bundle, run.o, run.state, record, run.dev, run.tc, run.device, run.out)
        run.best = kept or run.best
        record["elapsed_seconds"] = round(time.monotonic() - run.t0, 2)
        run.state.epoch, run.state.elapsed = record["epoch"], time.monotonic() - run.t0
        log_epoch(run.out, run.state, record, run.model, run.o)
    run.reporter.epoch_end(record)
    return stop_reason(run.state, run.tc, time.monotonic() - run.t0, run.state.epoch * run.steps_per_epoch)


def _check_learned(run: Run) -> None:
    """Warn (on the terminal and in the model card) when the best model predicts no entity, or
    one type only, on dev."""
    if not run.dev or run.bundle.scheme == "none":
        return
    pred = predict(run.bundle, [t for t, _ in run.dev], run.tc.eval_batch_size, run.device)
    note = budget.learned_nothing([g for _, g in run.dev], pred)
    if note:
        run.reporter.message(f"warning: {note}")
        run.bundle.meta["warnings"] = [*run.bundle.meta.get("warnings", []), note]


def end_run(run: Run, stopped_by: str) -> TrainResult:
    """The result of a run: on the main process, the best model loaded, scored on test and saved."""
    state = run.state
    seconds = time.monotonic() - run.t0
    if not run.group.is_main:
        return TrainResult(out_dir=run.out, best_epoch=0, best_dev_f1=None, epochs_run=len(state.history),
                           seconds=seconds, test=None, history=state.history, stopped_by=stopped_by)
    if run.best is None:
        raise NertoolError("training stopped before the first epoch ended; nothing was saved")
    run.model.load_state_dict(run.best)
    _check_learned(run)
    test_scores = finish(run.bundle, run.out, run.test, stopped_by, run.tc, run.device)
    return TrainResult(out_dir=run.out, best_epoch=state.best_epoch, best_dev_f1=state.best_f1 if run.dev else None,
                       epochs_run=len(state.history), seconds=time.monotonic() - run.t0, test=test_scores,
                       history=state.history, stopped_by=stopped_by, warnings=list(run.bundle.meta.get("warnings", [])))


def _short(record: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("dev_"): v for k, v in record.items() if k.startswith("dev_")}
