"""Where chunks of documents get tagged: in this process, or in a pool of worker processes.

A chunk is a list of :class:`~nertool.inputs.Document` of about :data:`CHUNK_CHARS` characters,
read by the one reader of the calling process. An engine maps chunks to ``(output bytes, tokens)``
in input order. :class:`WorkerPool` runs ``workers`` spawned processes, each with its own model and
one intra-op thread; at most ``window`` chunks are in flight, so memory stays bounded however large
the input.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from .errors import NertoolError
from .inputs import Document, segment_documents
from .output import render

CHUNK_CHARS = 1 << 18  # about 45k tokens of English: a few tenths of a second of one core's work


@dataclass(frozen=True)
class RenderOptions:
    """What a worker needs to turn documents into output bytes."""

    output_format: str = "jsonl"
    nbest: int = 0
    batch_size: int = 256
    scores: bool = True
    lang: str = "en"
    doc_context: float = 0.0  # > 0: mentions of a name within a document pulled towards one type


def chunked(docs: Iterable[Document], chars: int = CHUNK_CHARS) -> Iterator[list[Document]]:
    """Consecutive documents grouped into lists of at least ``chars`` characters (the last may
    be shorter)."""
    chunk: list[Document] = []
    n = 0
    for d in docs:
        chunk.append(d)
        n += len(d.text)
        if n >= chars:
            yield chunk
            chunk, n = [], 0
    if chunk:
        yield chunk


def tag_documents(tagger, docs: list[Document], opts: RenderOptions) -> tuple[list[bytes], int]:
    """Split (where not split yet), tag in batches and render documents: each document's output
    bytes, and the number of tokens tagged. A long document is tagged in parts of ``4 *
    batch_size`` sentences (except for ``docs`` output, whose record needs it whole)."""
    part = 0 if opts.output_format == "docs" else opts.batch_size * 4
    pieces: list[list[bytes]] = []
    tokens = 0
    for d, data in render(tagger, segment_documents(docs, opts.lang, part), opts.output_format, opts.nbest,
                          opts.batch_size, opts.scores, opts.doc_context):
        if d.first_sentence and pieces:  # a later part of the same document
            pieces[-1].append(data)
        else:
            pieces.append([data])
        tokens += sum(len(s) for s in d.sentences)
    return [b"".join(p) for p in pieces], tokens


def tag_chunk(tagger, docs: list[Document], opts: RenderOptions) -> tuple[bytes, int]:
    """One chunk's output bytes and number of tokens."""
    data, tokens = tag_documents(tagger, docs, opts)
    return b"".join(data), tokens


class InProcess:
    """Tags chunks with a :class:`~nertool.tagger.Tagger` of this process."""

    def __init__(self, tagger, opts: RenderOptions):
        self.tagger = tagger
        self.opts = opts

    def map(self, chunks: Iterable[list[Document]]) -> Iterator[tuple[bytes, int]]:
        for chunk in chunks:
            yield tag_chunk(self.tagger, chunk, self.opts)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- worker processes -------------------------------------------------------------------------
_worker: dict = {}


def _watch_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (killed with SIGKILL, say):
    an orphaned worker would otherwise wait on its queue for ever."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init(model: str, device: str, threads: int, opts: RenderOptions, parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        import torch

        from .tagger import Tagger

        torch.set_num_threads(threads)
        _worker["tagger"] = Tagger.load(model, device=device, batch_size=opts.batch_size)
        _worker["opts"] = opts
    except NertoolError as e:  # reported with the first chunk, as the one-line error it is
        _worker["error"] = str(e)


def _run(chunk: list[Document]) -> tuple[bytes, int]:
    if "error" in _worker:
        raise NertoolError(_worker["error"])
    return tag_chunk(_worker["tagger"], chunk, _worker["opts"])


class WorkerPool:
    """``workers`` spawned processes, each loading ``model`` on ``device`` with ``threads``
    intra-op threads; chunks are tagged in parallel and come back in input order."""

    def __init__(self, model: str, opts: RenderOptions, workers: int, device: str = "cpu", threads: int = 1,
                 window: int | None = None):
        import multiprocessing

        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.window = window or 2 * workers + 1
        # spawn, not fork: a forked child of a process that used OpenMP or CUDA can hang
        ctx = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init,
                                        initargs=(model, device, threads, opts, os.getpid()))

    def map(self, chunks: Iterable[list[Document]]) -> Iterator[tuple[bytes, int]]:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(self.pool.submit(_run, chunk))
                if len(pending) >= self.window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise NertoolError("a tagging worker process died (out of memory? see the messages above)") from None
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def default_workers(total_bytes: int) -> int:
    """The workers ``--workers 0`` means: one per core for inputs of 4 MiB or more, else one (a
    worker takes a second or two to start)."""
    return 1 if total_bytes < 4 << 20 else available_cores()


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
