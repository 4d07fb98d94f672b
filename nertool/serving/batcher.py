"""Dynamic batching for the service: concurrent requests gathered into one tagging call.

Requests wait in a bounded queue. One model thread takes the oldest, then keeps taking more until
the batch holds ``max_tokens`` tokens (estimated from the text's length before it is split) or
``max_wait`` seconds have passed since that oldest request arrived, whichever is first; a request
alone is never held back longer than that wait. With no wait (the default) a batch is what is
queued when the model thread comes for it: under load, the requests that arrive while one batch
is tagged make up the next, and a lone request is tagged at once (BENCHMARKS.md 20.4). Requests
with the same options are tagged in one call of the Tagger's one inference path
(:meth:`nertool.tag.tagger.Tagger.tag_documents`); each gets its own records back. The event loop
only parses and answers: splitting, tagging and rendering run on the model thread.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nertool.data.inputs import Document, joined
from nertool.data.segment import sentences as split_text
from nertool.tag.options import TagOptions

CHARS_PER_TOKEN = 5  # English averages about 5 characters a token, spaces included


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests already: the client should retry later (429)."""


@dataclass
class Request:
    """One request: its texts (or token lists), options, and where its answer goes."""

    texts: list[str] | None
    tokens: list[list[str]] | None
    opts: TagOptions
    render: Callable[[Document, list], Any]  # (document, its sentence results) -> a record
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)

    @property
    def size(self) -> int:
        """Tokens, counted or (for raw text) estimated."""
        if self.tokens is not None:
            return sum(len(t) for t in self.tokens)
        return sum(len(t) for t in self.texts or []) // CHARS_PER_TOKEN + 1

    def documents(self) -> list[Document]:
        """A document per text (split into sentences here, on the model thread), or per token list
        (its text: the tokens joined by single spaces)."""
        if self.tokens is not None:
            return [Document("", k, 1, text, [toks] if toks else [])
                    for k, (text, toks) in enumerate(map(joined, self.tokens))]
        return [Document("", k, 1, text, split_text(text, self.opts.lang)) for k, text in enumerate(self.texts or [])]


@dataclass
class BatchStats:
    """What the model thread reports after each batch (for the metrics)."""

    requests: int
    tokens: int
    seconds: float


class Batcher:
    """The bounded request queue and the model thread that empties it (see the module's docstring)."""

    def __init__(self, tagger, max_tokens: int = 4096, max_wait: float = 0.0, max_queue: int = 256,
                 on_batch: Callable[[BatchStats], None] = lambda stats: None):
        self.tagger = tagger
        self.max_tokens, self.max_wait, self.max_queue = max_tokens, max_wait, max_queue
        self.on_batch = on_batch
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="nertool-model", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken into a batch)."""
        return self._queue.qsize()

    def enqueue(self, texts: list[str] | None, tokens: list[list[str]] | None, opts: TagOptions,
                render: Callable[[Document, list], Any]) -> asyncio.Future:
        """A future of the running loop for the records of one request, set once its batch is
        tagged (cancel it to drop the request); :class:`QueueFull` at once when ``max_queue``
        requests wait already."""
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self.max_queue} requests are waiting")
        loop = asyncio.get_running_loop()
        req = Request(texts, tokens, opts, render, loop.create_future(), loop)
        self._queue.put(req)
        return req.future

    def close(self, timeout: float = 30.0) -> None:
        """Tag what is queued, then stop the model thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    # -- the model thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, size, stop = [first], first.size, False
            deadline = first.arrived + self.max_wait
            while size < self.max_tokens:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                size += nxt.size
            self._tag(batch)
            if stop:
                return

    def _tag(self, batch: list[Request]) -> None:
        t0 = time.monotonic()
        live = [r for r in batch if not r.future.cancelled()]  # a client that timed out is not tagged
        groups: dict[TagOptions, list[Request]] = {}
        for r in live:
            groups.setdefault(r.opts, []).append(r)
        tokens = 0
        done: list[tuple[Request, Any, BaseException | None]] = []
        for opts, reqs in groups.items():
            answered = len(done)  # this group's requests are appended in order from here
            try:
                docs = [r.documents() for r in reqs]
                flat = [d for ds in docs for d in ds]
                for n, d in enumerate(flat):
                    d.index = n  # one document each, for document context
                answers = list(self.tagger.tag_documents(flat, opts))
                pos = 0
                for r, ds in zip(reqs, docs):
                    part = answers[pos : pos + len(ds)]
                    pos += len(ds)
                    tokens += sum(len(s) for d, _ in part for s in d.sentences)
                    done.append((r, [r.render(d, res) for d, res in part], None))
            except Exception as e:  # noqa: BLE001 - every waiting client gets the error, none hangs
                done += [(r, None, e) for r in reqs[len(done) - answered :]]
        _answer_all(done)
        self.on_batch(BatchStats(len(live), tokens, time.monotonic() - t0))


def _answer_all(done: list[tuple[Request, Any, BaseException | None]]) -> None:
    """Every request's answer (a value or an error) set on its loop: one wake-up of each loop for
    the whole batch, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for r, value, error in done:
        by_loop.setdefault(r.loop, []).append((r.future, value, error))
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, answers)
        except RuntimeError:  # that loop has closed: nobody waits for these answers
            pass


def _set_all(answers: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for future, value, error in answers:
        if future.done():  # cancelled by a timeout meanwhile
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
