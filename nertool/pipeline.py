"""Bulk tagging: input paths (files, directories, globs) -> documents -> tagged output, one output
file per input written atomically, so a rerun skips what is done."""
from __future__ import annotations

import glob
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import BadLines, NertoolError
from .inputs import open_input, read_documents
from .workers import CHUNK_CHARS, RenderOptions, chunked

OUTPUT_SUFFIX = {"jsonl": ".jsonl", "docs": ".jsonl", "conll": ".conll", "inline": ".txt"}
INPUT_SUFFIXES = (".txt", ".text", ".conll", ".iob", ".bio", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class TagOptions:
    input_format: str = "auto"
    output_format: str = "jsonl"
    nbest: int = 0
    batch_size: int = 256
    scores: bool = True
    token_column: int = 0
    encoding: str = "utf-8"
    lang: str = "en"
    skip_bad: bool = False
    doc_context: float = 0.0


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


def tag_source(engine, source: str, opts: TagOptions, bad: BadLines,
               progress: Callable[[int, int], None] | None = None, chunk_chars: int = CHUNK_CHARS) -> Iterator[bytes]:
    """Output bytes of one input, chunk by chunk (of about ``chunk_chars`` characters) in input
    order, tagged by ``engine`` (an :class:`~nertool.workers.InProcess` or a
    :class:`~nertool.workers.WorkerPool`); ``progress(bytes_read, tokens)`` after each chunk."""
    stream, name, _ = open_input(source)
    positions: deque[int] = deque()  # where the reader was after each chunk still being tagged

    def chunks():
        docs = read_documents(stream, name, opts.input_format, opts.encoding, opts.token_column, bad, lang=None)
        for chunk in chunked(docs, chunk_chars):
            positions.append(stream.tell() if stream.seekable() else 0)
            yield chunk

    try:
        for data, tokens in engine.map(chunks()):
            pos = positions.popleft()
            if progress is not None:
                progress(pos, tokens)
            yield data
    finally:
        if source != "-":
            stream.close()


def render_options(opts: TagOptions) -> RenderOptions:
    return RenderOptions(opts.output_format, opts.nbest, opts.batch_size, opts.scores, opts.lang, opts.doc_context)
