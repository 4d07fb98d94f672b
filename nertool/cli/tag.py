"""``nertool tag``: inputs, outputs and an engine, handed to the bulk job runner."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core

from nertool.cli.common import InputFormat, OutputFormat, err, user_errors
from nertool.errors import BadLines
from nertool.fileio import locked


def _model_and_inputs(args: list[str]) -> tuple[str, list[str]]:
    """``[MODEL] INPUT...``: the first argument is the model when it names one (a model directory,
    an exported file, a bundled name) and inputs follow; else every argument is an input for ``en``.
    A first argument that is no input and no model but looks like a model's name (a misspelt
    bundled name, a broken link), or a model given without inputs, is an error, never a guess."""
    import difflib
    import glob

    from nertool.errors import ModelError, NertoolError
    from nertool.store.locate import bundled_models, is_torchscript, resolve_model
    from nertool.store.rundir import looks_like_model

    first = Path(args[0])
    if first.is_symlink() and not first.exists():
        raise ModelError(f"{args[0]}: a broken symbolic link (it points to {os.readlink(first)}, which does not exist)")
    try:
        p = resolve_model(args[0])
        is_model = looks_like_model(p) or is_torchscript(p) or p.suffix in (".pt", ".onnx")
    except ModelError:
        is_model = False
    if is_model and len(args) == 1:
        raise NertoolError(f"{args[0]} is a model: give the files to tag after it (or - for standard input)")
    if is_model:
        return args[0], args[1:]
    if len(args) > 1 and args[0] != "-" and not first.exists() and not glob.has_magic(args[0]):
        close = difflib.get_close_matches(args[0], bundled_models(), n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (bundled: {', '.join(bundled_models())})"
        raise ModelError(f"{args[0]}: no such model or input file{hint}")
    return "en", args


class MetavarUsage(typer.core.TyperCommand):
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




@user_errors
def tag_cmd(
    args: Annotated[list[str], typer.Argument(metavar="[MODEL] INPUT", show_default=False, help="Model directory, exported .pt / .onnx file or bundled name (default: en), then input files, directories or globs (- for stdin).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (one input), or directory: one output per input at its relative path, written atomically; a rerun skips inputs already tagged from the same bytes with the same settings.")] = None,
    input_format: Annotated[InputFormat, typer.Option("--input-format", "-i", help="auto: by suffix (.txt text, .conll conll, .jsonl jsonl); text: paragraphs split into sentences; lines: one text per line; tokens: one pre-tokenised sentence per line; conll: columns; jsonl: {\"text\", \"id\", ...} records.")] = InputFormat.auto,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="jsonl: a record per sentence; docs: a record per document (spaCy/Prodigy shape); conll; inline markup; spacy: a spaCy DocBin (.spacy, entities).")] = OutputFormat.jsonl,
    nbest: Annotated[int, typer.Option(help="Also output the K best label sequences with probabilities (jsonl).", min=0)] = 0,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.", min=1)] = 256,
    threads: Annotated[int, typer.Option(help="Torch CPU threads per process (0: torch's default with one process, 1 with several).", min=0)] = 0,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Tagging processes, fed by one reader, output in input order (0: one per core for inputs of 4 MiB or more, else 1).", min=0)] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    ray: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help="Tag on a Ray cluster with Ray Data (pip install 'nertool\\[ray]'): auto (the running cluster), an address, or local (start Ray here with --workers CPUs); outputs as with the other engines.")] = None,
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
    from nertool.errors import NertoolError
    from nertool.runtime import freeze_heap
    from nertool.store.locate import model_fingerprint
    from nertool.tag import bulk
    from nertool.tag.engines import default_workers, make_engine
    from nertool.tag.options import TagOptions
    from nertool.tag.output import FINISHERS

    model, specs = _model_and_inputs(args)
    opts = TagOptions(nbest=nbest, scores=not no_scores, doc_context=doc_context, batch_size=batch_size, lang=lang,
                      input_format=input_format.value, output_format=fmt.value, token_column=token_column,
                      encoding=encoding, skip_bad=skip_bad)
    if fmt.value == "spacy" and output is None and sys.stdout.isatty():
        raise NertoolError("--format spacy writes a binary DocBin: give -o FILE.spacy (or a directory)")
    jobs = bulk.plan(specs, output, fmt.value)
    into_dir = output is not None and any(j.target is not None and j.target != output for j in jobs)
    with locked(output, "output directory") if into_dir else contextlib.nullcontext():
        settings = f"{model} {model_fingerprint(model)} {sorted(opts.to_dict().items())}"  # a retrained model redoes all
        manifest = bulk.Manifest(output, settings) if into_dir else None
        todo = bulk.pending(jobs, force, manifest)
        bulk.remove_stale_temporaries(todo)
        if len(todo) < len(jobs):
            err.print(f"skipping {len(jobs) - len(todo)} input(s) already tagged from the same input with the same "
                      "settings (--force redoes them)", highlight=False)
        if ray is None:
            workers = workers or default_workers(bulk.input_bytes(todo))
        bad = BadLines(skip=skip_bad)
        t0 = time.monotonic()
        with make_engine(model, opts, workers, device, threads, ray) as engine, _progress(todo) as advance:
            freeze_heap()  # the model and the libraries, loaded: out of the collector's way
            tokens = bulk.run_jobs(engine, todo, bad, sys.stdout.buffer, advance,
                                   done=manifest.record if manifest is not None else lambda job: None,
                                   whole=FINISHERS.get(fmt.value))
        if manifest is not None:
            manifest.save()
    if output is not None:
        seconds = time.monotonic() - t0
        err.print(f"tagged {len(todo)} input(s), {tokens:,} tokens in {seconds:.1f} s -> {output}", highlight=False)
    if bad.count:
        err.print(f"[yellow]warning:[/] skipped {bad.count} bad line(s); the first: {bad.first}", highlight=False,
                  soft_wrap=True)


@contextlib.contextmanager
def _progress(jobs):
    """One bar over the bytes of all inputs, with tokens/s and the time left (on a terminal);
    yields ``advance(job) -> callback(bytes_read, tokens)``."""
    from nertool.tag.bulk import input_bytes

    total = input_bytes(jobs)
    if not (err.is_terminal and total):
        yield lambda job: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("tagging"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rate]} tokens/s"),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("tag", total=total, rate="-")
        state = {"done": 0, "tokens": 0, "t0": time.monotonic()}

        def advance(job):
            base = state["done"]
            state["done"] += input_bytes([job])

            def cb(pos, tokens):
                state["tokens"] += tokens
                rate = state["tokens"] / max(time.monotonic() - state["t0"], 1e-9)
                progress.update(task, completed=base + pos, rate=f"{rate:,.0f}")

            return cb

        yield advance

