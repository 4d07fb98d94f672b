"""The training loop: returns a :class:`TrainResult`; reports through a callback; never prints."""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import __version__
from . import tags as tagmod
from .batching import Encoded, Encoder, length_buckets
from .checkpoint import ModelBundle, read_config, save_model
from .config import Config, TrainConfig
from .conll import Corpus, Sentence, load_corpus
from .distributed import SOLO, Group
from .embeddings import load_vectors, pretrained_rows
from .errors import NertoolError
from .evaluate import evaluate
from .fileio import atomic_write_bytes, atomic_write_text, interrupts_deferred, is_nonempty_dir
from .model import BiLstmCrf
from .plot import write_training_plot
from .tagger import torch_device
from .vocab import CharVocab, Normalization, WordVocab


class WeightAverage:
    """Exponential moving average of a model's parameters; ``swap()`` puts the averages in place
    for evaluation and saving."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = model
        self.decay = decay
        self.tensors = [p.data for p in model.parameters()]
        self.shadow = [t.detach().clone() for t in self.tensors]
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))  # short warm-up
        torch._foreach_lerp_(self.shadow, [t.detach() for t in self.tensors], 1 - d)

    def swap(self) -> None:
        """Exchange the live weights and the averages (call twice to undo)."""
        with torch.no_grad():
            for live, avg in zip(self.tensors, self.shadow):
                tmp = live.clone()
                live.copy_(avg)
                avg.copy_(tmp)


class CheckpointAverage:
    """The mean of the weights evaluated at the ends of the last ``n`` epochs (checkpoint
    averaging); :meth:`add` keeps the weights in place now, :meth:`swap` exchanges them with the
    mean, as :meth:`WeightAverage.swap` does."""

    def __init__(self, model: torch.nn.Module, n: int):
        self.tensors = [p.data for p in model.parameters()]
        self.n = n
        self.kept: list[list[torch.Tensor]] = []  # oldest first, at most n
        self._other: list[torch.Tensor] | None = None

    @torch.no_grad()
    def add(self) -> None:
        self.kept.append([t.detach().clone() for t in self.tensors])
        del self.kept[: -self.n]

    @torch.no_grad()
    def swap(self) -> None:
        """Put the mean of the kept weights in place; the next call puts the weights back."""
        if self._other is None:
            self._other = [t.clone() for t in self.tensors]
            for i, t in enumerate(self.tensors):
                t.copy_(torch.stack([k[i] for k in self.kept]).mean(0))
        else:
            for t, back in zip(self.tensors, self._other):
                t.copy_(back)
            self._other = None


class Reporter(Protocol):
    def start(self, epochs: int, steps_per_epoch: int) -> None: ...
    def step(self, epoch: int, loss: float) -> None: ...
    def epoch_end(self, record: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


class SilentReporter:
    def start(self, epochs, steps_per_epoch): pass
    def step(self, epoch, loss): pass
    def epoch_end(self, record): pass
    def message(self, text): pass


@dataclass
class TrainResult:
    out_dir: Path
    best_epoch: int
    best_dev_f1: float | None
    epochs_run: int
    seconds: float
    test: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "epochs"  # epochs | patience | time | interrupt


def internal_labels(corpus_labels: Sequence[str], scheme: str, internal: str) -> tuple[list[str], str]:
    """Label set used inside the model and its scheme: every prefix of every type, so that the
    constraint mask is complete and unseen prefixes can still be predicted."""
    if scheme == "none":
        return sorted(corpus_labels), "none"
    target = scheme if internal == "same" else "BIOES"
    types = tagmod.entity_types(corpus_labels)
    prefixes = "BIES" if target == "BIOES" else "BI"
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes], target


def seed_everything(seed: int) -> random.Random:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return random.Random(seed)


def split_dev(corpus: Corpus, tc: TrainConfig) -> tuple[list[Sentence], list[Sentence] | None]:
    """Training and dev sentences: the corpus's dev split, or ``tc.dev_fraction`` of train held
    out (a seeded shuffle), or no dev set."""
    train_sents = corpus.sentences("train")
    if "dev" in corpus.splits:
        return train_sents, corpus.sentences("dev")
    if tc.dev_fraction <= 0:
        return train_sents, None
    order = list(range(len(train_sents)))
    random.Random(tc.seed).shuffle(order)
    n_dev = max(1, int(len(order) * tc.dev_fraction))
    return [train_sents[i] for i in order[n_dev:]], [train_sents[i] for i in order[:n_dev]]


def machine_record(where: torch.device) -> dict[str, Any]:
    """What a run was trained on (its last start, when resumed): the same seed gives the same
    weights only on the same kind of machine, since torch picks its CPU kernels by instruction set."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    record: dict[str, Any] = {"torch": torch.__version__, "cpu": cpu,
                              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                              "threads": torch.get_num_threads(), "device": where.type}
    if where.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(where)
    return record


def build_bundle(config: Config, train_sents: Sequence[Sentence], corpus_labels: Sequence[str], scheme: str,
                 reporter: Reporter) -> ModelBundle:
    """A freshly initialised model with vocabularies built from ``train_sents`` alone."""
    mc = config.model
    pre_words, pre_vecs = (None, None)
    if mc.embeddings:
        reporter.message(f"loading embeddings {mc.embeddings}")
        pre_words, pre_vecs = load_vectors(mc.embeddings)
    words = WordVocab.build((t for t, _ in train_sents), pre_words, Normalization.from_config(mc))
    chars = CharVocab.build(t for t, _ in train_sents)
    labels, internal = internal_labels(corpus_labels, scheme, config.train.internal_scheme)
    model = BiLstmCrf(mc, len(words), words.n_tuned, len(chars), labels, internal, 0 if pre_vecs is None else pre_vecs.shape[1])
    model.set_char_kinds(chars.chars)
    if pre_vecs is not None:
        rows = torch.from_numpy(pretrained_rows(words, pre_words))
        has = rows >= 0
        table = torch.zeros(len(words), pre_vecs.shape[1])
        table[has] = torch.from_numpy(pre_vecs[rows[has].numpy()])
        if mc.pretrained_precision == "float16":  # trained on exactly what the model file stores
            table = table.half().float()
        model.init_embeddings(table, has)
        reporter.message(f"pretrained vectors for {int(has[: words.n_tuned].sum())}/{words.n_tuned} training words, {len(words)} words in all")
    else:
        model.init_embeddings(None, None)
    return ModelBundle(model, words, chars, scheme, internal)


def _encode_split(bundle: ModelBundle, encoder: Encoder, sentences: Sequence[Sentence]) -> list[Encoded]:
    index = {l: i for i, l in enumerate(bundle.labels)}
    convert = bundle.internal_scheme != bundle.scheme and bundle.scheme != "none"
    toks, tag_ids = [], []
    for t, g in sentences:
        if convert:
            g = tagmod.convert(g, bundle.scheme, bundle.internal_scheme)
        toks.append(t)
        tag_ids.append([index[x] for x in g])
    return encoder.encode(toks, tag_ids)


@dataclass
class Optimisation:
    """What a training step changes besides the model: optimiser, schedule, weight average, and
    the random generator that shuffles batches."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    ema: WeightAverage | None
    rng: random.Random
    avg: CheckpointAverage | None = None

    @classmethod
    def create(cls, model: torch.nn.Module, tc: TrainConfig, rng: random.Random) -> "Optimisation":
        params = [p for p in model.parameters() if p.requires_grad]
        if tc.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)
        elif tc.optimizer == "nadam":
            opt = torch.optim.NAdam(params, lr=tc.lr, weight_decay=tc.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 / (1.0 + tc.lr_decay * e))
        return cls(opt, sched, WeightAverage(model, tc.ema) if tc.ema else None, rng,
                   CheckpointAverage(model, tc.average_last) if tc.average_last > 1 else None)


STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"


@dataclass
class LoopState:
    """Where a run stands after an epoch; with the model and :class:`Optimisation` it is the
    resumable training state (tensors in safetensors, the rest in JSON, nothing pickled)."""

    config: dict[str, Any]
    epoch: int = 0
    best_f1: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    corpus: dict[str, str | None] | None = None  # fingerprints of the train and dev sentences
    stopped_by: str | None = None  # set when the run ended (epochs, patience, time)
    processes: int = 1  # how many processes trained it (the config's batch size is per process)

    @staticmethod
    def peek(out: Path) -> dict[str, Any]:
        """The JSON half of the snapshot in ``out``, read before anything is loaded."""
        try:
            return json.loads((out / STATE_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NertoolError(f"{out}: cannot resume, no training state ({STATE_JSON} missing)") from None
        except ValueError as e:
            raise NertoolError(f"{out}: cannot resume, corrupt training state: {e}") from None

    def save(self, out: Path, model: BiLstmCrf, o: Optimisation) -> None:
        """Write the snapshot; the JSON goes last and names the epoch, so a snapshot is only used
        once both files are complete."""
        tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.trained_state().items()}
        opt_state = o.opt.state_dict()
        for i, st in opt_state["state"].items():
            for k, v in st.items():
                tensors[f"opt.{i}.{k}"] = (v.detach().reshape(-1) if v.dim() == 0 else v.detach()).contiguous().cpu()
        if o.ema is not None:
            for i, t in enumerate(o.ema.shadow):
                tensors[f"ema.{i}"] = t.contiguous().cpu()
        if o.avg is not None:
            for j, kept in enumerate(o.avg.kept):
                for i, t in enumerate(kept):
                    tensors[f"avg.{j}.{i}"] = t.contiguous().cpu()
        tensors["rng.torch"] = torch.get_rng_state()
        atomic_write_bytes(out / STATE_TENSORS, st_save(tensors))
        self.save_json(out, o)

    def save_json(self, out: Path, o: Optimisation) -> None:
        """Write the JSON half of the snapshot alone (the tensors of the same step are on disk)."""
        opt_state = o.opt.state_dict()
        version, internal, gauss = o.rng.getstate()
        state = {
            **asdict(self),
            "param_groups": opt_state["param_groups"],
            "opt_keys": {str(i): sorted(st) for i, st in opt_state["state"].items()},
            # 0-d state tensors (Adam's step; NAdam's mu_product too) are stored flat: their names
            "opt_scalars": sorted({k for st in opt_state["state"].values() for k, v in st.items() if v.dim() == 0}),
            "sched": {k: v for k, v in o.sched.state_dict().items() if k != "lr_lambdas"},
            "ema_steps": o.ema.steps if o.ema is not None else 0,
            "averaged_epochs": len(o.avg.kept) if o.avg is not None else 0,
            "rng_python": [version, list(internal), gauss],
        }
        atomic_write_text(out / STATE_JSON, json.dumps(state))

    @classmethod
    def load(cls, out: Path, model: BiLstmCrf, o: Optimisation, state: dict[str, Any] | None = None) -> "LoopState":
        """Read the snapshot in ``out`` into ``model`` and ``o``; returns the loop state. ``state``:
        its JSON half when the caller has read it already (:meth:`peek`)."""
        if state is None:
            state = cls.peek(out)
        try:
            tensors = st_load((out / STATE_TENSORS).read_bytes())
        except FileNotFoundError as e:
            raise NertoolError(f"{out}: cannot resume, no training state ({Path(e.filename).name} missing)") from None
        except (ValueError, SafetensorError) as e:
            raise NertoolError(f"{out}: cannot resume, corrupt training state: {e}") from None
        model.load_trained_state({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        opt_state: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
        scalars = set(state.get("opt_scalars", ["step"]))  # older snapshots list none: only step
        for i, keys in state["opt_keys"].items():
            # scalars come back 0-d; load_state_dict moves each tensor to its parameter's device
            opt_state["state"][int(i)] = {k: tensors[f"opt.{i}.{k}"].reshape(()) if k in scalars else tensors[f"opt.{i}.{k}"]
                                          for k in keys}
        o.opt.load_state_dict(opt_state)
        o.sched.load_state_dict({**state["sched"], "lr_lambdas": [None]})
        if o.ema is not None:
            for i, t in enumerate(o.ema.shadow):
                t.copy_(tensors[f"ema.{i}"])
            o.ema.steps = state["ema_steps"]
        if o.avg is not None:  # a run resumed with a longer or shorter average keeps what it can
            kept = state.get("averaged_epochs", 0)
            for j in range(max(0, kept - o.avg.n), kept):
                o.avg.kept.append([tensors[f"avg.{j}.{i}"].to(t.device) for i, t in enumerate(o.avg.tensors)])
        torch.set_rng_state(tensors["rng.torch"])
        version, internal, gauss = state["rng_python"]
        o.rng.setstate((version, tuple(internal), gauss))
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})


def fingerprint(sentences: Sequence[Sentence] | None) -> str | None:
    """A SHA-256 over the tokens and tags of ``sentences`` (None for no sentences)."""
    if sentences is None:
        return None
    h = hashlib.sha256()
    for tokens, tags in sentences:
        h.update(("\x1f".join(tokens) + "\x1e" + "\x1f".join(tags) + "\x1d").encode("utf-8"))
    return h.hexdigest()


def batch_for_world(out: Path, saved: dict[str, Any], config: Config, world: int) -> Config:
    """``config`` with the per-process batch size for ``world`` processes: a run resumed on another
    number of processes keeps its global batch (``batch_size x processes``), so its recipe goes on
    unchanged. NertoolError when that batch does not divide over ``world``."""
    was = int(saved.get("processes", 1))
    if was == world:
        return config
    total = config.train.batch_size * was
    if total % world:
        raise NertoolError(f"{out}: cannot resume on {world} processes: the run's global batch of {total} "
                           f"sentences ({was} processes x {config.train.batch_size}) does not divide over them")
    return replace(config, train=replace(config.train, batch_size=total // world))


# what a resumed run may change: how long it goes on and which weights it keeps, never the path
# its weights take (an uninterrupted run with the new values trains the same weights)
RESUME_MAY_CHANGE = ("epochs", "average_last")


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A saved or new configuration with the defaults of keys added since, and without the fields a
    resume may change."""
    try:
        full = Config.from_dict(config).to_dict()
    except NertoolError:
        return config
    for name in RESUME_MAY_CHANGE:
        full["train"].pop(name, None)
    return full


def check_resumable(out: Path, saved: dict[str, Any], config: Config, corpus: dict[str, str | None]) -> None:
    """NertoolError unless the run in ``out`` can go on with ``config`` and ``corpus``. A run that
    ended after its epochs goes on when ``config`` asks for more of them."""
    if _comparable(saved.get("config") or {}) != _comparable(config.to_dict()):
        raise NertoolError(f"{out}: cannot resume with a different configuration than the run's")
    known = saved.get("corpus")
    if known is not None:
        for split in ("train", "dev"):
            if known.get(split) != corpus.get(split):
                what = "no" if corpus.get(split) is None else "a different"
                raise NertoolError(f"{out}: cannot resume with {what} {split} set: the run was trained on other "
                                   f"sentences (give the same files as when it started)")
    done = saved.get("epoch", 0)
    if saved.get("stopped_by") == "epochs" and config.train.epochs > done:
        return  # extended: more epochs than the run was given
    if saved.get("stopped_by"):
        more = " (give more --epochs to extend it)" if saved["stopped_by"] == "epochs" else ""
        raise NertoolError(f"{out}: the run already ended (stopped by {saved['stopped_by']} after epoch "
                           f"{done}); nothing to resume{more}")


class Diverged(NertoolError):
    """The training loss became infinite or NaN."""


class _Loss(torch.nn.Module):
    """The model's training loss as a ``forward``, for DistributedDataParallel to wrap."""

    def __init__(self, model: BiLstmCrf):
        super().__init__()
        self.model = model

    def forward(self, words, chars, char_index, mask, tags) -> torch.Tensor:
        loss = self.model.loss(words, chars, char_index, mask, tags)
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
            loss = model.loss(batch.words, batch.chars, batch.char_index, batch.mask, batch.tags)
        else:
            loss = step(batch.words, batch.chars, batch.char_index, batch.mask, batch.tags)
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
        reporter.step(epoch, value)
    o.sched.step()
    total, n = group.sum(total, n)
    return {"epoch": epoch, "loss": total / max(n, 1), "lr": o.opt.param_groups[0]["lr"],
            "epoch_seconds": round(time.monotonic() - e0, 2)}


def stop_reason(state: LoopState, tc: TrainConfig, seconds: float) -> str | None:
    """Why training stops after this epoch (``patience`` or ``time``), or None to go on."""
    if tc.patience and state.bad_epochs >= tc.patience:
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



def prepare_run_dir(out: Path, resume: bool, force: bool) -> None:
    """Create the run directory, refusing to train a new run into a non-empty one unless ``force``."""
    if out.exists() and not out.is_dir():
        raise NertoolError(f"{out}: exists and is not a directory; --out names a run directory")
    if not resume and is_nonempty_dir(out) and not force:
        what = "holds a run" if (out / "config.json").exists() else "is not empty"
        raise NertoolError(f"{out}: {what}; choose a new --out, --resume it, or --force to replace its run "
                           "files (other files are left alone)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".nertool-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise NertoolError(f"{out}: cannot write the run directory ({e.strerror or e})") from None


def log_epoch(out: Path, state: LoopState, record: dict[str, Any], model: BiLstmCrf, o: Optimisation) -> None:
    """Add the epoch to the history, save the resumable state, metrics.jsonl and the plot."""
    state.history.append(record)
    state.save(out, model, o)
    # rewritten whole: never truncated before this run has an epoch to put in it
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in state.history))
    write_training_plot(out / "metrics.png", state.history, out.name)


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


STOP_REASONS = (None, "patience", "time")


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
) -> TrainResult:
    """Train on ``corpus['train']``, select the best epoch by dev span F1, save the best model to
    ``out_dir`` (with ``metrics.jsonl`` and a resumable training state after every epoch), and
    score it on ``corpus['test']`` when present. With ``resume``, continue from the state in
    ``out_dir``: the run ends as an uninterrupted one with the same seed would. ``device``
    (``cpu``, ``cuda``, ``cuda:N``) is where the model trains; the saved model is the same format.
    A new run needs a new or empty ``out_dir``; with ``force``, the files of a run in it are
    replaced as the new run writes them, and other files are left alone.

    ``group`` (:func:`nertool.distributed.init_group`) makes this one of several processes
    (torchrun): gradients are all-reduced, and rank 0 alone evaluates, saves and decides when to
    stop; with ``resume`` every rank reads the state in ``out_dir`` (a shared file system)."""
    reporter = reporter or SilentReporter()
    if not isinstance(corpus, Corpus):  # a DatasetDict, or a training file's path
        corpus = load_corpus(corpus, data=config.data)
    out = Path(out_dir)
    group.agree(lambda: prepare_run_dir(out, resume, force) if group.is_main else None)
    asked = config  # the run's own configuration, which a resume checks against the saved one
    saved = group.agree(lambda: LoopState.peek(out)) if resume else {}
    if resume:
        config = group.agree(lambda: batch_for_world(out, saved, config, group.world))
    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    elif group.distributed and group.backend == "gloo":  # share the cores among this machine's ranks
        local = int(os.environ.get("LOCAL_WORLD_SIZE", group.world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    rng = seed_everything(tc.seed)
    t0 = time.monotonic()

    train_sents, dev_sents = split_dev(corpus, tc)
    test_sents = corpus.sentences("test") if "test" in corpus.splits else None
    corpus_fp = {"train": fingerprint(train_sents), "dev": fingerprint(dev_sents)}
    for split, digest in corpus_fp.items():  # raises on every rank alike: no agree() around it
        group.check_same(f"{split} sentences", digest)
    bundle = group.agree(lambda: build_bundle(config, train_sents, corpus.labels, corpus.scheme, reporter))
    bundle.meta.update(corpus=corpus_info or {}, train=tc.to_dict(), data=config.data.to_dict(),
                       trained_with=f"nertool {__version__}")
    if group.distributed:
        bundle.meta["distributed"] = {"processes": group.world, "backend": group.backend,
                                      "global_batch_size": tc.batch_size * group.world}
    where = torch_device(device)
    bundle.meta["machine"] = machine_record(where)
    model = bundle.model.to(where)
    encoder = Encoder(bundle.words, bundle.chars, config.model.max_word_chars)
    items = _encode_split(bundle, encoder, train_sents)
    o = Optimisation.create(model, tc, rng)

    state = LoopState(config=config.to_dict(), corpus=corpus_fp, processes=group.world)
    best_state = None
    if resume:
        def load_state() -> LoopState:
            check_resumable(out, saved, asked, corpus_fp)  # before any tensor is loaded
            return LoopState.load(out, model, o, saved)

        state = group.agree(load_state)
        state.corpus, state.config, state.processes = corpus_fp, config.to_dict(), group.world
        state.stopped_by = None  # an extended run goes on
        t0 -= state.elapsed
        reporter.message(f"resuming {out} after epoch {state.epoch}")
        if state.best_epoch and group.is_main:
            best_state = st_load((out / "model.safetensors").read_bytes())
    step = None
    if group.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # the pretrained table is a constant buffer: never re-broadcast it
        step = DistributedDataParallel(_Loss(model), device_ids=[where.index] if where.type == "cuda" else None,
                                       broadcast_buffers=False)

    reporter.start(tc.epochs, math.ceil(len(items) / (tc.batch_size * group.world)))
    stopped_by = "epochs"
    try:
        for epoch in range(state.epoch + 1, tc.epochs + 1):
            record = run_epoch(model, o, encoder, items, tc, where, epoch, reporter, group, step)
            reason = None
            if group.is_main:
                # Ctrl-C waits for the epoch's files: model, state and log always agree
                with interrupts_deferred():
                    _, kept = evaluate_and_keep(bundle, o, state, record, dev_sents, tc, device, out)
                    best_state = kept or best_state
                    record["elapsed_seconds"] = round(time.monotonic() - t0, 2)
                    state.epoch, state.elapsed = epoch, time.monotonic() - t0
                    log_epoch(out, state, record, model, o)
                reporter.epoch_end(record)
                reason = stop_reason(state, tc, time.monotonic() - t0)
            else:
                state.epoch = epoch
                state.history.append(record)
            reason = STOP_REASONS[group.decide(STOP_REASONS.index(reason))]  # rank 0 decides for all
            if reason:
                stopped_by = reason
                break
        state.stopped_by = stopped_by
        if group.is_main:
            state.save_json(out, o)  # a finished run is not resumed by mistake (one atomic file)
    except KeyboardInterrupt:
        stopped_by = "interrupt"
    except Diverged as e:
        kept = f"; the best model so far (epoch {state.best_epoch}) is kept in {out}" if state.best_epoch else ""
        raise Diverged(f"{e}{kept}") from None
    if not group.is_main:
        return TrainResult(out_dir=out, best_epoch=0, best_dev_f1=None, epochs_run=len(state.history),
                           seconds=time.monotonic() - t0, test=None, history=state.history, stopped_by=stopped_by)
    if best_state is None:
        raise NertoolError("training stopped before the first epoch ended; nothing was saved")
    model.load_state_dict(best_state)
    test_scores = finish(bundle, out, test_sents, stopped_by, tc, device)
    return TrainResult(out_dir=out, best_epoch=state.best_epoch, best_dev_f1=state.best_f1 if dev_sents else None,
                       epochs_run=len(state.history), seconds=time.monotonic() - t0, test=test_scores,
                       history=state.history, stopped_by=stopped_by)


def _short(record: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("dev_"): v for k, v in record.items() if k.startswith("dev_")}
