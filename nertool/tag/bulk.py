"""Bulk jobs: input paths (files, directories, globs) -> an engine -> one output per input, written
atomically, so a rerun skips what is done. The same for every engine (in-process, workers, Ray)."""
from __future__ import annotations

import contextlib
import glob
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nertool.errors import BadLines, NertoolError
from nertool.fileio import atomic_write
from nertool.tag.engines import Engine

OUTPUT_SUFFIX = {"jsonl": ".jsonl", "docs": ".jsonl", "conll": ".conll", "inline": ".txt"}
INPUT_SUFFIXES = (".txt", ".text", ".conll", ".iob", ".bio", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class Job:
    """One input and where its output goes (``None``: standard output)."""

    source: str
    target: Path | None


def expand_inputs(specs: list[str]) -> list[tuple[str, Path]]:
    """``(input, path relative to the output directory)`` for each file named by ``specs``: a file
    as given, a directory's files (recursively, known suffixes), a glob's matches; ``-`` is stdin."""
    found: list[tuple[str, Path]] = []
    for spec in specs:
        p = Path(spec)
        if spec == "-" or p.is_file():
            found.append((spec, Path(p.name if spec != "-" else "stdin")))
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES)
            if not files:
                raise NertoolError(f"{spec}: directory has no input files ({', '.join(INPUT_SUFFIXES)})")
            found += [(str(f), f.relative_to(p)) for f in files]
        else:
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise NertoolError(f"{spec}: no such file, directory or glob match")
            found += [(m, Path(Path(m).name)) for m in matches if Path(m).is_file()]
    return found


def plan(specs: list[str], output: Path | None, fmt: str) -> list[Job]:
    """The jobs of a run: without ``output``, everything to stdout; with one input and an output
    that is not a directory, that file; else one file per input inside the ``output`` directory."""
    inputs = expand_inputs(specs)
    single = len(inputs) == 1 and not any(Path(s).is_dir() for s in specs)
    if output is None:
        jobs = [Job(src, None) for src, _ in inputs]
    elif single and not output.is_dir() and not str(output).endswith(("/", "\\")):
        jobs = [Job(inputs[0][0], output)]
    else:
        if output.exists() and not output.is_dir():
            raise NertoolError(f"{output}: exists and is not a directory; several inputs need an output directory")
        jobs = [Job(src, output / rel.with_suffix(OUTPUT_SUFFIX[fmt])) for src, rel in inputs]
    for job in jobs:
        if job.target is not None and job.source != "-" and Path(job.source).resolve() == job.target.resolve():
            raise NertoolError(f"{job.source}: the output would replace this input; choose another output")
    return jobs


def pending(jobs: list[Job], force: bool) -> list[Job]:
    """The jobs still to do: all with ``force`` or a single job; else those whose output is absent."""
    return [j for j in jobs if force or j.target is None or not j.target.exists() or len(jobs) == 1]


def input_bytes(jobs: list[Job]) -> int:
    return sum(Path(j.source).stat().st_size for j in jobs if j.source != "-")


def run_jobs(engine: Engine, jobs: list[Job], bad: BadLines, stdout: BinaryIO,
             progress: Callable[[Job], Callable[[int, int], None] | None] = lambda job: None) -> int:
    """Tag every job's input with ``engine``; each output is written atomically (standard output
    for a job without a target) and every job gets its output, empty or not. An input is read only
    once the output before it is complete, so a bad input stops the run with every earlier output
    whole. ``progress(job)`` gives the callback ``(bytes_read, tokens)`` of that job. Returns the
    number of tokens tagged."""
    stream = engine.run([j.source for j in jobs], bad)
    pending = next(stream, None)
    tokens = 0
    for k, job in enumerate(jobs):
        report = progress(job)
        with _output(job, stdout) as out:
            while pending is not None and pending[0] == k and pending[1] is not None:
                _, data, n, pos = pending
                out.write(data)
                tokens += n
                if report is not None:
                    report(pos, n)
                pending = next(stream, None)
        if pending is not None and pending[0] == k:  # the input's end: read the next one only now
            pending = next(stream, None)
    return tokens


@contextlib.contextmanager
def _output(job: Job, stdout: BinaryIO) -> Iterator[BinaryIO]:
    if job.target is None:
        yield stdout
        stdout.flush()
    else:
        with atomic_write(job.target, "wb", encoding=None) as f:
            yield f
