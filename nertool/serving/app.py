"""``nertool serve``: the tagging service as an ASGI app (FastAPI on uvicorn).

``POST /tag`` tags ``{"text": ...}`` (one record back), ``{"texts": [...]}`` or ``{"tokens":
[[...]]}`` (a list back, in order) through the :class:`~nertool.serving.batcher.Batcher`, which
gathers concurrent requests into one call of the Tagger's one inference path. Records have the
shape ``nertool tag --format docs`` writes (offsets into the request's own text); ``"format":
"hf"`` gives the Hugging Face token-classification pipeline's. ``GET /info``, ``/health``,
``/ready``, ``/metrics`` (Prometheus), ``/`` (a page to try it), ``/docs`` (the API).

Every error is a one-line JSON ``{"error": ...}`` with a 4xx code (429 with ``Retry-After`` when
the queue is full, 413 for a body over the limit, 401 without the API key, 504 past the
request timeout); a 500 only for a fault of the service itself, never with a traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from importlib import resources
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nertool.errors import ConfigError, NertoolError
from nertool.serving.batcher import Batcher, BatchStats, QueueFull
from nertool.tag.options import MAX_NBEST, TagOptions
from nertool.tag.output import document_record

log = logging.getLogger("nertool.serve")
ENV_CONFIG = "NERTOOL_SERVE_CONFIG"  # the settings, as JSON, for each uvicorn worker process
ENV_API_KEY = "NERTOOL_API_KEY"
# batches padded to a multiple of 8 sentences: fewer shapes, whose oneDNN kernels then stay in the
# kernel cache, so memory stops growing once they are made (BENCHMARKS.md 21.10, 22.3); padding rows
# is nearly free, where padding lengths (8 tokens, 21.10) cost LSTM steps
ROW_MULTIPLE = 8


@dataclass(frozen=True)
class ServeConfig:
    """The service's settings; see ``nertool serve --help`` for what each trades."""

    model: str = "en"
    device: str = "cpu"
    threads: int = 0  # torch threads per process (0: torch's default)
    batch_size: int = 256  # sentences per network call inside a batch
    max_batch_tokens: int = 4096  # a batch is closed at this many tokens ...
    max_wait_ms: float = 0.0  # ... or this long after its oldest request arrived (0: what is queued now)
    max_queue: int = 256  # requests waiting; more are answered 429
    max_bytes: int = 1 << 20  # request body limit (413)
    timeout_s: float = 30.0  # per request (504)
    api_key: str = ""  # empty: no key needed
    lang: str = "en"

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_batch_tokens", "max_queue", "max_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "timeout_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be a finite non-negative number, got {v}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServeConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown serve settings: {', '.join(sorted(unknown))}")
        return cls(**data)


class TagRequest(BaseModel):
    """The body of ``POST /tag``: exactly one of ``text``, ``texts``, ``tokens``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | None = Field(None, description="One text: one record comes back.")
    texts: list[str] | None = Field(None, description="Several texts: a list of records, in order.")
    tokens: list[list[str]] | None = Field(None, description="Pre-tokenised sentences: a record each.")
    nbest: int = Field(0, ge=0, le=MAX_NBEST, description="Also the K best tag sequences of each sentence.")
    marginals: bool = Field(False, description="Each token's probability for every label.")
    doc_context: float = Field(0.0, ge=0, allow_inf_nan=False,
                               description="Pull a name's mentions within a text towards one type.")
    scores: bool = Field(True, description="CRF span confidences (off: Viterbi only, faster).")
    format: Literal["docs", "hf"] = Field("docs", description="docs: nertool's record; hf: the "
                                          "Hugging Face token-classification pipeline's list.")


class _Error(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": " ".join(str(message).split())})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(_error_body(message), status_code=status, media_type="application/json", headers=headers)


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self, depth) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter("nertool_requests", "HTTP requests answered", ["path", "status"], registry=r)
        self.latency = Histogram("nertool_request_seconds", "Time to answer a request", ["path"], registry=r,
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10))
        self.batch_requests = Histogram("nertool_batch_requests", "Requests gathered into one batch", registry=r,
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.batch_tokens = Histogram("nertool_batch_tokens", "Tokens tagged in one batch", registry=r,
                                      buckets=(16, 64, 256, 1024, 4096, 16384, 65536))
        self.tokens = Counter("nertool_tokens", "Tokens tagged", registry=r)
        self.errors = Counter("nertool_errors", "Requests refused or failed, by kind", ["kind"], registry=r)
        self.queue = Gauge("nertool_queue_depth", "Requests waiting for a batch", registry=r)
        self.queue.set_function(depth)
        self._children: dict[tuple[str, int], tuple] = {}

    def answered(self, path: str | None, status: int, seconds: float) -> None:
        """One request answered: counted by path and status, timed, and counted as an error kind."""
        key = (path if path in _PATHS else "other", status)
        children = self._children.get(key)
        if children is None:  # prometheus_client's labels() lookup, once per path and status
            kind = _KINDS.get(status, str(status))
            children = self._children[key] = (self.requests.labels(key[0], str(status)), self.latency.labels(key[0]),
                                              self.errors.labels(kind) if status >= 400 else None)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()

    def batch(self, stats: BatchStats) -> None:
        self.batch_requests.observe(stats.requests)
        self.batch_tokens.observe(stats.tokens)
        self.tokens.inc(stats.tokens)


_KINDS = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method", 413: "too_large",
          429: "queue_full", 500: "internal", 503: "not_ready", 504: "timeout"}


class Service:
    """The service's state (the tagger, the batcher, the metrics) and its endpoints."""

    def __init__(self, config: ServeConfig, tagger=None):
        self.config, self.tagger, self.batcher = config, tagger, None
        self.metrics = Metrics(lambda: self.batcher.depth if self.batcher else 0)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI):
        c = self.config
        if self.tagger is None:
            from nertool.runtime import freeze_heap
            from nertool.tag.tagger import Tagger

            self.tagger = await asyncio.to_thread(Tagger.load, c.model, c.device, c.batch_size, c.threads)
            freeze_heap()
        self.batcher = Batcher(self.tagger, c.max_batch_tokens, c.max_wait_ms / 1000, c.max_queue,
                               on_batch=self.metrics.batch)
        try:
            yield
        finally:
            batcher, self.batcher = self.batcher, None
            await asyncio.to_thread(batcher.close)  # requests in flight are answered first

    def observe(self, app):
        """ASGI middleware (plain, not Starlette's BaseHTTPMiddleware, which costs a task and a
        stream per request): counts and times every request; a fault of the service becomes one
        line, never a traceback."""

        async def middleware(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            t0 = time.perf_counter()
            status = 500
            started = False

            async def sending(message):
                nonlocal status, started
                if message["type"] == "http.response.start":
                    status, started = message["status"], True
                await send(message)

            try:
                if scope["path"] == "/tag" and scope["method"] == "POST":
                    await self.tag_asgi(scope, receive, sending)
                else:
                    await app(scope, receive, sending)
            except Exception:
                log.exception("internal error on %s", scope.get("path"))
                status = 500
                if not started:
                    await _error(500, "internal error (see the service's log)")(scope, receive, send)
            self.metrics.answered(scope.get("path"), status, time.perf_counter() - t0)

        return middleware

    def _check_key(self, headers) -> None:
        """``headers``: a mapping of lower-case header names (Starlette's, or one made from the scope)."""
        if not self.config.api_key:
            return
        given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.config.api_key.encode()):
            raise _Error(401, "missing or wrong API key (X-API-Key or Authorization: Bearer)")

    async def answer_tag(self, headers, read_body) -> tuple[int, bytes, dict[str, str]]:
        """``POST /tag``: (status, JSON body, extra headers). ``read_body(limit)`` returns the
        request's body, or raises a 413 :class:`_Error` past ``limit`` bytes."""
        c = self.config
        try:
            self._check_key(headers)
            if self.batcher is None:
                raise _Error(503, "the model is not loaded yet")
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > c.max_bytes:
                raise _Error(413, f"request body over {c.max_bytes} bytes")
            req = _parse(await read_body(c.max_bytes))
        except _Error as e:
            return e.status, _error_body(e.message), e.headers
        opts = TagOptions(nbest=req.nbest, scores=req.scores or req.format == "hf", marginals=req.marginals,
                          doc_context=req.doc_context, batch_size=c.batch_size, lang=c.lang,
                          row_multiple=ROW_MULTIPLE)
        texts = [req.text] if req.text is not None else req.texts
        render = _hf if req.format == "hf" else _record
        try:
            future = self.batcher.enqueue(texts, req.tokens, opts, render)
        except QueueFull as e:
            return 429, _error_body(f"busy: {e}; retry later"), {"Retry-After": "1"}
        late = asyncio.get_running_loop().call_later(c.timeout_s, future.cancel) if c.timeout_s else None
        try:
            records = await future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if late is None or not future.cancelled() or getattr(task, "cancelling", lambda: 0)():
                raise  # the client went away, or the service is stopping: not a timeout
            return 504, _error_body(f"not answered within {c.timeout_s:g} s"), {}
        except NertoolError as e:
            return 400, _error_body(str(e)), {}
        finally:
            if late is not None:
                late.cancel()
        return 200, orjson.dumps(records[0] if req.text is not None else records), {}

    async def tag(self, request: Request) -> Response:
        """The FastAPI route of ``POST /tag`` (what the OpenAPI page shows; the service's own
        middleware answers it first, without FastAPI's routing, see :meth:`observe`)."""

        async def read_body(limit: int) -> bytes:
            body = await request.body()
            if len(body) > limit:
                raise _Error(413, f"request body over {limit} bytes")
            return body

        status, body, headers = await self.answer_tag(request.headers, read_body)
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    async def tag_asgi(self, scope, receive, send) -> None:
        """``POST /tag`` as a plain ASGI call: the request's bytes to the batcher and back, without
        FastAPI's routing and dependency machinery (most of a small request's cost)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def read_body(limit: int) -> bytes:
            parts, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise asyncio.CancelledError  # nobody to answer
                part = message.get("body", b"")
                size += len(part)
                if size > limit:
                    raise _Error(413, f"request body over {limit} bytes")
                parts.append(part)
                if not message.get("more_body", False):
                    return b"".join(parts)

        status, body, extra = await self.answer_tag(headers, read_body)
        out = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        out += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def info(self, request: Request) -> Response:
        try:
            self._check_key(request.headers)
        except _Error as e:
            return _error(e.status, e.message)
        t = self.tagger
        if t is None:
            return _error(503, "the model is not loaded yet")
        meta = t.bundle.meta
        return _json({"model": self.config.model, "labels": t.labels, "scheme": t.scheme,
                      "scores": meta.get("scores", {}), "nertool": _version(), "trained_with": meta.get("trained_with"),
                      "settings": {k: v for k, v in asdict(self.config).items() if k != "api_key"}})

    async def health(self) -> Response:
        return _json({"status": "alive"})

    async def ready(self) -> Response:
        if self.batcher is None:
            return _error(503, "not ready: the model is loading or the service is stopping")
        return _json({"status": "ready"})

    async def prometheus(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def page(self) -> HTMLResponse:
        return HTMLResponse(_asset("page.html"))

    async def docs(self) -> HTMLResponse:
        return HTMLResponse(_asset("docs.html"))

    async def not_found(self, request: Request, exc) -> Response:
        return _error(404, f"no such endpoint: {request.method} {request.url.path}")

    async def not_allowed(self, request: Request, exc) -> Response:
        return _error(405, f"{request.method} is not allowed on {request.url.path}")


def create_app(config: ServeConfig, tagger=None) -> FastAPI:
    """The service for ``config``; ``tagger`` (a loaded :class:`~nertool.tag.tagger.Tagger`) saves
    loading ``config.model`` again (tests, Ray Serve)."""
    app, s = _build(config, tagger)
    app.add_middleware(_Observe, service=s)
    return app


def _build(config: ServeConfig, tagger=None) -> tuple[FastAPI, Service]:
    """The FastAPI app of the service's endpoints, without the observing layer, and the service."""
    s = Service(config, tagger)
    app = FastAPI(title="nertool", version=_version(), lifespan=s.lifespan, docs_url=None, redoc_url=None,
                  summary="Named entities (and chunks, POS tags) with CRF confidences, in batches.")
    body = {"requestBody": {"required": True, "content": {"application/json": {"schema": TagRequest.model_json_schema()}}}}
    app.add_api_route("/tag", s.tag, methods=["POST"], summary="Tag text", openapi_extra=body)
    app.add_api_route("/info", s.info, methods=["GET"], summary="The model: labels, scheme, scores, version")
    app.add_api_route("/health", s.health, methods=["GET"], summary="Alive")
    app.add_api_route("/ready", s.ready, methods=["GET"], summary="Model loaded, taking requests")
    app.add_api_route("/metrics", s.prometheus, methods=["GET"], summary="Prometheus metrics")
    app.add_api_route("/", s.page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", s.docs, methods=["GET"], include_in_schema=False)
    app.add_exception_handler(404, s.not_found)
    app.add_exception_handler(405, s.not_allowed)
    return app, s


class _Observe:
    """The service's :meth:`Service.observe` middleware in the shape ``add_middleware`` takes."""

    def __init__(self, app, service: Service):
        self.call = service.observe(app)

    async def __call__(self, scope, receive, send):
        await self.call(scope, receive, send)


_PATHS = {"/tag", "/info", "/health", "/ready", "/metrics", "/", "/docs", "/openapi.json"}


def _parse(body: bytes) -> TagRequest:
    if not body.strip():
        raise _Error(400, "empty body: send JSON such as {\"text\": \"...\"}")
    try:
        req = TagRequest.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise _Error(400, f"{where}: {first.get('msg', 'invalid')}") from None
    given = [k for k in ("text", "texts", "tokens") if getattr(req, k) is not None]
    if len(given) != 1:
        raise _Error(400, "give exactly one of text, texts, tokens")
    if req.text is not None and not req.text.strip():
        raise _Error(400, "text is empty")
    if req.format == "hf" and (req.nbest or req.marginals):
        raise _Error(400, "format hf has no n-best or marginals; use format docs")
    return req


def _record(doc, results) -> dict[str, Any]:
    """nertool's document record (``--format docs``), with n-best and marginals when asked."""
    rec = document_record(doc, results)
    rec.pop("meta", None)
    if results and results[0].nbest is not None:
        rec["nbest"] = [[{"tags": tags, "prob": round(p, 6)} for tags, p in r.nbest] for r in results]
    if results and results[0].marginals is not None:
        rec["marginals"] = [{k: round(v, 6) for k, v in m.items()} for r in results for m in r.marginals]
    return rec


def _hf(doc, results) -> list[dict[str, Any]]:
    """The Hugging Face token-classification pipeline's shape (``aggregation_strategy`` simple)."""
    out = []
    for sent, r in zip(doc.sentences, results):
        for label, s, e, p in r.chunks:
            a, b = sent[s].start, sent[e - 1].end
            out.append({"entity_group": label, "score": round(p, 6), "word": doc.text[a:b], "start": a, "end": b})
    return out


def _asset(name: str) -> str:
    return resources.files("nertool.serving").joinpath(name).read_text(encoding="utf-8")


def _version() -> str:
    from nertool import __version__

    return __version__


def app_from_env():
    """The ASGI app of a ``nertool serve`` worker process, settings from :data:`ENV_CONFIG`: the
    observing layer in front of FastAPI rather than inside its middleware stack, so ``POST /tag``
    passes through none of FastAPI's layers (a few percent more tokens/s, BENCHMARKS.md 21.13);
    every other request goes on to FastAPI."""
    app, service = _build(ServeConfig.from_dict(json.loads(os.environ[ENV_CONFIG])))
    return service.observe(app)
