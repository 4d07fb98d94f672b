"""``nertool serve``: the tagging service on uvicorn (settings -> :mod:`nertool.serving`)."""
from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from nertool.cli.common import err, user_errors
from nertool.errors import NertoolError


@user_errors
def serve_cmd(
    model: Annotated[str, typer.Argument(help="Model: a bundled name (en, en-fast), a run directory or an exported file.")] = "en",
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Service processes, each with the model and its own batching (0: one per core).", min=0)] = 1,
    threads: Annotated[int, typer.Option(help="torch threads per process (0: the cores shared among the processes).", min=0)] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    max_batch_tokens: Annotated[int, typer.Option(help="A batch closes at this many tokens: larger batches tag more tokens/s, a request waits longer for its batch.", min=1)] = 4096,
    max_wait_ms: Annotated[float, typer.Option(help="... or this many milliseconds after its oldest request arrived: the most a lone request is held back (0: tag what is queued at once; requests that come meanwhile form the next batch).", min=0)] = 0.0,
    max_queue: Annotated[int, typer.Option(help="Requests waiting per process; more are answered 429 with Retry-After.", min=1)] = 256,
    max_bytes: Annotated[int, typer.Option(help="Largest request body (413 above it).", min=1)] = 1 << 20,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take (504 past it; 0: no limit).", min=0)] = 30.0,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File holding the API key clients must send (X-API-Key or Authorization: Bearer); or set NERTOOL_API_KEY.", exists=True, dir_okay=False)] = None,
    lang: Annotated[str, typer.Option(help="Language of the texts, for sentences and tokens.")] = "en",
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="A line per request on stderr.")] = True,
):
    """Serve a model over HTTP: POST /tag, GET /info, /health, /ready, /metrics; a page to try
    it at /, the API at /docs. Concurrent requests are tagged together in batches.

    Example:
      nertool serve en-fast --port 8080 --workers 2
      curl -s localhost:8080/tag -d '{"text": "Angela Merkel visited Paris."}'
    """
    try:
        import uvicorn
    except ImportError:
        raise NertoolError("nertool serve needs its extra: pip install 'nertool[serve]'") from None
    from nertool.runtime import available_cores, bound_kernel_caches
    from nertool.serving.app import ENV_API_KEY, ENV_CONFIG, ServeConfig
    from nertool.store.locate import resolve_model

    bound_kernel_caches()  # before any network runs here or in the worker processes, which inherit it
    resolve_model(model)  # a misspelt model is one line now, not a failing worker later
    key = api_key_file.read_text(encoding="utf-8").strip() if api_key_file else os.environ.get(ENV_API_KEY, "")
    if api_key_file and not key:
        raise NertoolError(f"{api_key_file}: the API key file is empty")
    procs = workers or available_cores()
    config = ServeConfig(model=str(model), device=device, threads=threads or max(1, available_cores() // procs),
                         max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms, max_queue=max_queue,
                         max_bytes=max_bytes, timeout_s=timeout, api_key=key, lang=lang)
    os.environ[ENV_CONFIG] = json.dumps(asdict(config))
    err.print(f"serving {model} on http://{host}:{port} ({procs} process(es), {config.threads} thread(s) each); "
              "Ctrl-C or SIGTERM stops after the requests in flight", highlight=False, soft_wrap=True)
    # uvicorn answers SIGTERM by draining, then raises it again: let that end the run with 0
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run("nertool.serving.app:app_from_env", factory=True, host=host, port=port, workers=procs,
                access_log=access_log, log_level="info", timeout_graceful_shutdown=max(timeout, 5.0))
