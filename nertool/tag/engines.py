"""Where documents get tagged: engines side by side behind one interface.

Every engine turns a list of input files into their output bytes, in input order
(:meth:`Engine.run` yields ``(input index, bytes, tokens)``); what is written where, and which
inputs are skipped, is :mod:`nertool.tag.bulk`'s business, the same for every engine.

- :class:`InProcess`: a :class:`~nertool.tag.tagger.Tagger` of this process.
- :class:`WorkerPool`: ``workers`` spawned processes, each with its own model, fed by the one
  reader of this process; at most ``window`` chunks are in flight, so memory stays bounded however
  large the input.
- :class:`~nertool.tag.raydata.RayEngine`: a Ray cluster through Ray Data (``nertool[ray]``).

The first two read each input into chunks, lists of :class:`~nertool.data.inputs.Document` of
about :data:`CHUNK_CHARS` characters.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from nertool.data.inputs import Document, chunked, open_input, read_documents, segment_documents
from nertool.errors import BadLines, NertoolError
from nertool.runtime import available_cores
from nertool.tag.options import TagOptions
from nertool.tag.output import FORMATTERS, WHOLE_DOCUMENTS

CHUNK_CHARS = 1 << 18  # about 45k tokens of English: a few tenths of a second of one core's work


class Engine(Protocol):
    def run(self, sources: Sequence[str], bad: BadLines) -> Iterator[tuple[int, bytes | None, int, int]]:
        """``(input index, output bytes, tokens, bytes read so far of that input)`` in input order;
        ``(input index, None, 0, 0)`` marks the end of an input's output."""
        ...

    def close(self) -> None: ...


def tag_documents(tagger, docs: list[Document], opts: TagOptions) -> tuple[list[bytes], int]:
    """Split (where not split yet), tag in batches and render documents: each document's output
    bytes, and the number of tokens tagged. A long document is tagged in parts of ``4 *
    batch_size`` sentences (except for a format of whole-document records, ``docs`` and ``spacy``)."""
    part = 0 if opts.output_format in WHOLE_DOCUMENTS else opts.batch_size * 4
    pieces: list[list[bytes]] = []
    tokens = 0
    fmt = FORMATTERS[opts.output_format]
    for d, results in tagger.tag_documents(segment_documents(docs, opts.lang, part), opts):
        data = fmt(d, results)
        if d.first_sentence and pieces:  # a later part of the same document
            pieces[-1].append(data)
        else:
            pieces.append([data])
        tokens += sum(len(s) for s in d.sentences)
    return [b"".join(p) for p in pieces], tokens


def tag_chunk(tagger, docs: list[Document], opts: TagOptions) -> tuple[bytes, int]:
    """One chunk's output bytes and number of tokens."""
    data, tokens = tag_documents(tagger, docs, opts)
    return b"".join(data), tokens


class Closing:
    """``with engine: ...`` closes the engine."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _ChunkEngine(Closing):
    """An engine that reads inputs here, chunk by chunk, and tags the chunks with :meth:`map`."""

    opts: TagOptions
    chunk_chars: int = CHUNK_CHARS

    def map(self, chunks: Iterable[list[Document]]) -> Iterator[tuple[bytes, int]]:
        raise NotImplementedError

    def run(self, sources: Sequence[str], bad: BadLines) -> Iterator[tuple[int, bytes | None, int, int]]:
        for k, source in enumerate(sources):
            for data, tokens, pos in self._source(source, bad):
                yield k, data, tokens, pos
            yield k, None, 0, 0

    def _source(self, source: str, bad: BadLines) -> Iterator[tuple[bytes, int, int]]:
        stream, name, _ = open_input(source)
        positions: deque[int] = deque()  # where the reader was after each chunk still being tagged
        opts = self.opts

        def chunks():
            docs = read_documents(stream, name, opts.input_format, opts.encoding, opts.token_column, bad, lang=None)
            for chunk in chunked(docs, self.chunk_chars, lambda d: len(d.text)):
                positions.append(stream.tell() if stream.seekable() else 0)
                yield chunk

        try:
            for data, tokens in self.map(chunks()):
                yield data, tokens, positions.popleft()
        finally:
            if source != "-":
                stream.close()


class InProcess(_ChunkEngine):
    """Tags chunks with a :class:`~nertool.tag.tagger.Tagger` of this process."""

    def __init__(self, tagger, opts: TagOptions, chunk_chars: int = CHUNK_CHARS):
        self.tagger = tagger
        self.opts = opts
        self.chunk_chars = chunk_chars

    def map(self, chunks: Iterable[list[Document]]) -> Iterator[tuple[bytes, int]]:
        for chunk in chunks:
            yield tag_chunk(self.tagger, chunk, self.opts)


# -- worker processes -------------------------------------------------------------------------
_worker: dict = {}


def _watch_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (killed with SIGKILL, say):
    an orphaned worker would otherwise wait on its queue for ever."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init(model: str, device: str, threads: int, opts: TagOptions, parent: int) -> None:
    from nertool.runtime import die_with_parent, freeze_heap

    if not die_with_parent(parent):  # the kernel ends this worker with its parent (Linux)
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()  # elsewhere: polling
    try:
        import torch

        from nertool.tag.tagger import Tagger

        torch.set_num_threads(threads)
        _worker["tagger"] = Tagger.load(model, device=device, batch_size=opts.batch_size)
        _worker["opts"] = opts
        freeze_heap()
    except NertoolError as e:  # reported with the first chunk, as the one-line error it is
        _worker["error"] = str(e)


def _run(chunk: list[Document]) -> tuple[bytes, int]:
    if "error" in _worker:
        raise NertoolError(_worker["error"])
    return tag_chunk(_worker["tagger"], chunk, _worker["opts"])


class WorkerPool(_ChunkEngine):
    """``workers`` spawned processes, each loading ``model`` on ``device`` with ``threads``
    intra-op threads; chunks are tagged in parallel and come back in input order."""

    def __init__(self, model: str, opts: TagOptions, workers: int, device: str = "cpu", threads: int = 1,
                 window: int | None = None, chunk_chars: int = CHUNK_CHARS):
        import multiprocessing

        self.opts = opts
        self.chunk_chars = chunk_chars
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

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:  # a signal or an error: stop the workers now, not after their chunks (a 10 MB one: minutes)
            self.abort()

    def abort(self) -> None:
        """End the workers at once; what they were tagging is dropped."""
        terminate = getattr(self.pool, "terminate_workers", None)  # Python 3.14 and later
        if terminate is not None:
            terminate()
            return
        # before: the executor's shutdown forgets its processes (a private field, public from 3.14)
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(5)


def default_workers(total_bytes: int) -> int:
    """The workers ``--workers 0`` means: one per core for inputs of 4 MiB or more, else one (a
    worker takes a second or two to start)."""
    return 1 if total_bytes < 4 << 20 else available_cores()


def make_engine(model: str, opts: TagOptions, workers: int = 1, device: str = "cpu", threads: int = 0,
                ray: str | None = None) -> Engine:
    """The engine for a run: Ray Data on the cluster at ``ray`` (``local``: one started here with
    ``workers`` actors), else ``workers`` processes, else this process (torch and the model are
    loaded in this process only then)."""
    if ray is not None:
        from nertool.tag.raydata import RayEngine

        return RayEngine(model, opts, ray, workers or available_cores(), device)
    if workers <= 1:
        from nertool.tag.tagger import Tagger

        return InProcess(Tagger.load(model, device=device, batch_size=opts.batch_size, threads=threads), opts)
    return WorkerPool(model, opts, workers, device, threads or 1)
