"""``nertool train``: options to a Config, progress on the terminal, the summary table."""
from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from nertool import config as C
from nertool.cli.common import (
    CharEncoder,
    DataFormat,
    DropoutMask,
    Optimizer,
    Rnn,
    Scheme,
    TagField,
    _default,
    err,
    user_errors,
)
from nertool.errors import NertoolError

# train's options that set a config field: option name -> (section, field)
TRAIN_OPTIONS = {
    "fmt": ("data", "format"), "token_column": ("data", "token_column"), "tag_column": ("data", "tag_column"),
    "tag_field": ("data", "tag_field"), "scheme": ("data", "scheme"), "encoding": ("data", "encoding"),
    "strict": ("data", "strict"), "embeddings": ("model", "embeddings"), "hidden_size": ("model", "hidden_size"),
    "layers": ("model", "num_layers"), "rnn": ("model", "rnn"), "char_encoder": ("model", "char_encoder"),
    "char_hidden": ("model", "char_hidden"), "dropout": ("model", "dropout"), "dropout_mask": ("model", "dropout_mask"),
    "attention": ("model", "attention"),
    "epochs": ("train", "epochs"), "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
    "optimizer": ("train", "optimizer"), "clip": ("train", "clip"), "patience": ("train", "patience"), "max_minutes": ("train", "max_minutes"),
    "seed": ("train", "seed"), "threads": ("train", "threads"), "dev_fraction": ("train", "dev_fraction"),
    "average_last": ("train", "average_last"),
}



def config_from_options(toml: Path | None, options: dict) -> "C.Config":
    """The TOML file's config (or the defaults) with the options that were given on top."""
    base = C.Config.from_toml(toml) if toml else C.Config()
    changes: dict[str, dict] = {}
    for name, (section, key) in TRAIN_OPTIONS.items():
        value = options.get(name)
        changes.setdefault(section, {})[key] = value.value if isinstance(value, Enum) else value
    return base.override(changes)



class RichReporter:
    """Training progress on stderr: a bar per epoch with live loss, and dev F1 per epoch."""

    def __init__(self, console: Console):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("loss {task.fields[loss]}  dev F1 {task.fields[dev]}  run ETA {task.fields[eta]}"),
            console=console,
            transient=True,
        )
        self.task = None
        self.dev = "-"
        self.total = self.count = 0.0  # this epoch's losses so far, weighted by sentences as the epoch line's mean is
        self.epochs = 0
        self.t0 = time.monotonic()

    def start(self, epochs, steps_per_epoch):
        self.steps, self.epochs = steps_per_epoch, epochs
        self.t0 = time.monotonic()
        self.first_epoch = None
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps_per_epoch, epoch=1, epochs=epochs, loss="-", dev=self.dev, eta="-")

    def step(self, epoch, loss, sentences=1):
        if self.first_epoch is None:
            self.first_epoch = epoch
        self.total += loss * sentences
        self.count += sentences
        done = (epoch - self.first_epoch) * self.steps + self.progress.tasks[0].completed + 1
        left = (self.epochs - epoch + 1) * self.steps - self.progress.tasks[0].completed - 1
        eta = (time.monotonic() - self.t0) / done * left
        self.progress.update(self.task, advance=1, epoch=epoch, loss=f"{self.total / self.count:.4f}" if self.count else "-",
                             eta=f"{int(eta // 60)}:{int(eta % 60):02d}")

    def epoch_end(self, r):
        if "dev_f1" in r:
            self.dev = f"{100 * r['dev_f1']:.2f}"
        mark = " *" if r.get("best") else ""
        self.console.print(
            f"epoch {r['epoch']:3d}/{self.epochs}  loss {r['loss']:.4f}  dev F1 {self.dev}  ({r['epoch_seconds']:.0f}s){mark}", highlight=False
        )
        self.total = self.count = 0.0
        # the next epoch's bar: no loss until its first batch, and never past the last epoch
        self.progress.reset(self.task, total=self.steps, epoch=min(r["epoch"] + 1, self.epochs), epochs=self.epochs, loss="-", dev=self.dev,
                            eta=self.progress.tasks[0].fields.get("eta", "-"))

    def message(self, text):
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)  # "[train] ..." is text

    def stop(self):
        self.progress.stop()




@user_errors
def train_cmd(
    corpus: Annotated[str, typer.Argument(help="Training file (CoNLL / CoNLL-U), or a hub dataset name when online.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory: the best model, metrics.jsonl, training state.")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the interrupted run in this directory (its saved configuration is used; --epochs and --average-last may change, and more --epochs extend a finished run).", file_okay=False)] = None,
    dev: Annotated[Optional[Path], typer.Option(help="Development file for model selection and early stopping.", exists=True, dir_okay=False)] = None,
    test: Annotated[Optional[Path], typer.Option(help="Test file scored with the best model at the end.", exists=True, dir_okay=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML file with \\[data], \\[model], \\[train] sections.", exists=True, dir_okay=False)] = None,
    embeddings: Annotated[Optional[str], typer.Option(help="'glove-6b-50d' or a GloVe/word2vec text file.")] = None,
    fmt: Annotated[Optional[DataFormat], typer.Option("--format", help="Corpus file format.")] = None,
    token_column: Annotated[Optional[int], typer.Option(help="Token column (0-based; negative counts from the end).")] = None,
    tag_column: Annotated[Optional[int], typer.Option(help="Tag column (default: last).")] = None,
    tag_field: Annotated[Optional[TagField], typer.Option(help="CoNLL-U tag field.")] = None,
    scheme: Annotated[Optional[Scheme], typer.Option(help="Tag scheme (none: plain labels, e.g. POS).")] = None,
    encoding: Annotated[Optional[str], typer.Option(help="Corpus file encoding, e.g. latin-1.")] = None,
    strict: Annotated[Optional[bool], typer.Option("--strict/--repair", help="Reject ill-formed chunks instead of repairing them.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum number of epochs (default: from the corpus size: enough for 2,000 updates, at least 40).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sentences per batch (default: from the corpus size: 4 to 32).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate." + _default("train", "lr"))] = None,
    optimizer: Annotated[Optional[Optimizer], typer.Option(help="Optimiser." + _default("train", "optimizer"))] = None,
    clip: Annotated[Optional[float], typer.Option(help="Gradient-norm clipping, 0 for none." + _default("train", "clip"))] = None,
    hidden_size: Annotated[Optional[int], typer.Option(help="Recurrent hidden size per direction." + _default("model", "hidden_size"))] = None,
    layers: Annotated[Optional[int], typer.Option(help="Recurrent layers." + _default("model", "num_layers"))] = None,
    rnn: Annotated[Optional[Rnn], typer.Option(help="Recurrent cell." + _default("model", "rnn"))] = None,
    char_encoder: Annotated[Optional[CharEncoder], typer.Option(help="Character encoder." + _default("model", "char_encoder"))] = None,
    char_hidden: Annotated[Optional[int], typer.Option(help="Character CNN filters (or char LSTM size)." + _default("model", "char_hidden"))] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout rate." + _default("model", "dropout"))] = None,
    dropout_mask: Annotated[Optional[DropoutMask], typer.Option(help="token: a fresh mask per token; sequence: one per sentence." + _default("model", "dropout_mask"))] = None,
    attention: Annotated[Optional[bool], typer.Option("--attention/--no-attention", help="Self-attention over the Bi-LSTM states before the CRF (\\[model] attention_heads, attention_dropout, attention_combine, attention_window tune it)." + _default("model", "attention"))] = None,
    average_last: Annotated[Optional[int], typer.Option(help="Checkpoint averaging: evaluate and save the mean of the (EMA) weights at the ends of the last N epochs (0: none)." + _default("train", "average_last"))] = None,
    patience: Annotated[Optional[int], typer.Option(help="Epochs without dev improvement before stopping (0: never)." + _default("train", "patience"))] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Wall-clock budget in minutes (0: none)." + _default("train", "max_minutes"))] = None,
    dev_fraction: Annotated[Optional[float], typer.Option(help="Hold out this part of train as dev when --dev is absent." + _default("train", "dev_fraction"))] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed." + _default("train", "seed"))] = None,
    threads: Annotated[Optional[int], typer.Option(help="Torch CPU threads (0: default). A seed gives the same weights run after run at a given thread count; other counts round differently." + _default("train", "threads"))] = None,
    device: Annotated[str, typer.Option(help="Where to train: cpu, cuda or cuda:N (the saved model is the same).")] = "cpu",
    force: Annotated[bool, typer.Option("--force", help="Train into a non-empty --out, replacing the run files there (config.json, model.safetensors, ...); other files are left alone.")] = False,
    nproc: Annotated[int, typer.Option("--nproc", help="Train on N processes of this machine (DistributedDataParallel via torchrun; gloo on CPU, nccl on GPUs). --batch-size is per process: the global batch is N times it.", min=1)] = 1,
):
    """Train a Bi-LSTM-CRF tagger and save the best model (by dev span F1) to --out.

    Example:
      nertool train train.txt --dev valid.txt --test test.txt --embeddings glove-6b-50d --out runs/en
    """
    from nertool.training.distributed import (
        check_backend,
        launched_by_torchrun,
        relaunch_under_torchrun,
    )
    from nertool.training.run import run_training

    if (out_dir is None) == (resume is None):
        raise NertoolError("give exactly one of --out (a new run) or --resume (an interrupted run)")
    options = locals()
    cfg = _resumed(resume, config, options) if resume is not None else config_from_options(config, options)
    if nproc > 1 and not launched_by_torchrun():
        check_backend(device)
        if Path(corpus).exists():  # local files: bad input stops here in one line, before torchrun starts
            from nertool.data.conll import load_corpus

            load_corpus(corpus, dev, test, cfg.data)
        raise typer.Exit(relaunch_under_torchrun(nproc, sys.argv[1:]))
    result = run_training(corpus, dev, test, cfg, out_dir or resume, resume=resume is not None, device=device,
                          force=force, reporter=lambda main: RichReporter(err) if main else None)
    if result is None:  # not the main process of a distributed run
        return
    _print_summary(result)
    if result.stopped_by == "interrupt":
        raise typer.Exit(130)  # as a shell reports Ctrl-C; the best model so far is saved


def _flag(name: str) -> str:
    return f"--{'format' if name == 'fmt' else name.replace('_', '-')}"


def _resumed(run: Path, toml: Path | None, options: dict) -> "C.Config":
    """The saved configuration of the run in ``run`` with the options a resume may change;
    NertoolError naming the options given that it may not."""
    from nertool.training.state import RESUME_MAY_CHANGE, resumed_config

    may_change = [n for n, (section, key) in TRAIN_OPTIONS.items() if section == "train" and key in RESUME_MAY_CHANGE]
    given = [_flag(n) for n in TRAIN_OPTIONS if options.get(n) is not None and n not in may_change]
    if toml is not None:
        given.insert(0, "--config")
    if given:
        raise NertoolError(f"--resume continues the run with its saved configuration; {', '.join(given)} "
                           f"would not be applied: drop them (or start a new run); only "
                           f"{' and '.join(map(_flag, may_change))} may change")
    return resumed_config(run, {TRAIN_OPTIONS[n][1]: options[n] for n in may_change})


def _print_summary(result) -> None:
    t = Table(title=f"training finished: {result.out_dir}", show_header=False)
    t.add_row("epochs run", str(result.epochs_run))
    t.add_row("stopped by", result.stopped_by)
    t.add_row("best epoch", str(result.best_epoch))
    if result.best_dev_f1 is not None:
        t.add_row("best dev F1", f"{100 * result.best_dev_f1:.2f}")
    if result.test:
        t.add_row("test precision / recall / F1", " / ".join(f"{100 * result.test[k]:.2f}" for k in ("precision", "recall", "f1")))
    t.add_row("wall time", f"{result.seconds / 60:.1f} min")
    err.print(t)

