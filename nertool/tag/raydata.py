"""Tagging on a Ray cluster with Ray Data (the optional extra ``nertool[ray]``).

:class:`TagBatch` is a callable class for ``Dataset.map_batches``: each actor of the pool loads the
model once and turns a batch of documents into output records. It reads either a ``document``
column (what :func:`read_inputs` makes from input files) or a text column of any dataset:

    import ray
    from nertool.tag.raydata import TagBatch
    ds = ray.data.read_json("s3://bucket/news/")                     # rows with "text" (and "id")
    tagged = ds.map_batches(TagBatch, fn_constructor_kwargs={"model": "en", "options": {"scores": True}},
                            concurrency=8, num_cpus=1, batch_size=128)  # or num_gpus=1, device="cuda"
    tagged.write_json("s3://bucket/news-ner/")                      # columns path, doc, output

:class:`RayEngine` is what ``nertool tag ... --ray ADDRESS`` runs: input files -> documents (one
reader task per file) -> actor pool -> each input's output bytes, streamed back in input order, so
``-o DIR``, skipping finished inputs and every output format work as with the other engines.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from nertool.data.inputs import Document, read_documents
from nertool.data.text import Token
from nertool.errors import BadLines, NertoolError
from nertool.tag.engines import Closing, tag_documents
from nertool.tag.options import TagOptions


def _doc_to_json(d: Document) -> bytes:
    return orjson.dumps({"path": d.path, "index": d.index, "line": d.line, "text": d.text, "id": d.id,
                         "rows": d.rows, "extra": d.extra, "group": d.group, "docstart": d.docstart,
                         "sentences": None if d.sentences is None else [[list(t) for t in s] for s in d.sentences]})


def _doc_from_json(data: bytes | str) -> Document:
    r = orjson.loads(data)
    sents = None if r["sentences"] is None else [[Token(*t) for t in s] for s in r["sentences"]]
    return Document(r["path"], r["index"], r["line"], r["text"], sents, r["id"], r["rows"], r["extra"],
                    group=r.get("group"), docstart=r.get("docstart"))


def file_documents(row: dict[str, Any], names: dict[str, str], input_format: str = "auto",
                   encoding: str = "utf-8", token_column: int = 0, skip_bad: bool = False) -> list[dict[str, Any]]:
    """``flat_map`` step: one input file (``{"path", "bytes"}`` from ``read_binary_files``) -> one
    row per document, ``{"path", "doc", "document"}``; ``names`` maps Ray's paths to the names
    records carry (as the user gave them)."""
    import io

    path = row["path"]
    name = names.get(path, names.get("/" + path.lstrip("/"), path))
    docs = read_documents(io.BytesIO(row["bytes"]), name, input_format, encoding, token_column,
                          BadLines(skip=skip_bad), lang=None)
    return [{"path": name, "doc": d.index, "document": _doc_to_json(d)} for d in docs]


class TagBatch:
    """``map_batches`` callable: a batch of documents -> ``{"path", "doc", "output", "tokens"}``,
    where ``output`` is the document's rendered records in ``options``' output format."""

    def __init__(self, model: str = "en", *, options: TagOptions | dict | None = None, device: str = "cpu",
                 threads: int = 1, text_column: str = "text", id_column: str | None = "id"):
        import torch

        from nertool.runtime import freeze_heap
        from nertool.tag.tagger import Tagger

        torch.set_num_threads(threads)
        self.opts = options if isinstance(options, TagOptions) else TagOptions.from_dict(options or {})
        self.tagger = Tagger.load(model, device=device, batch_size=self.opts.batch_size)
        freeze_heap()
        self.text_column = text_column
        self.id_column = id_column

    def _documents(self, batch: dict[str, Any]) -> list[Document]:
        if "document" in batch:
            return [_doc_from_json(bytes(x) if not isinstance(x, (bytes, str)) else x) for x in batch["document"]]
        if self.text_column not in batch:
            raise NertoolError(f"batch has no {self.text_column!r} column (columns: {', '.join(batch)})")
        texts = list(batch[self.text_column])
        n = len(texts)
        paths = list(batch["path"]) if "path" in batch else ["<ray>"] * n
        index = [int(i) for i in batch["doc"]] if "doc" in batch else list(range(n))
        ids = list(batch[self.id_column]) if self.id_column and self.id_column in batch else [None] * n
        return [Document(str(paths[i]), index[i], 1, str(texts[i]), None, _plain(ids[i])) for i in range(n)]

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        docs = self._documents(batch)
        outputs, tokens = tag_documents(self.tagger, docs, self.opts)
        counts = [tokens] + [0] * (len(docs) - 1)  # the batch's tokens, counted on its first row
        return {"path": np.array([d.path for d in docs], dtype=object), "doc": np.array([d.index for d in docs]),
                "output": np.array([b.decode("utf-8") for b in outputs], dtype=object),
                "tokens": np.array(counts[: len(docs)])}


def _plain(v: Any) -> Any:
    """A numpy scalar as the Python value it holds (ids go into JSON)."""
    return v.item() if hasattr(v, "item") else v


class RayEngine(Closing):
    """The engine of :mod:`nertool.tag.engines` on a Ray cluster: ``address`` is ``local`` (start
    one here with ``workers`` CPUs for the actors and one for reading), ``auto`` (the running
    cluster, which needs CPUs beyond the actors' for reading) or a cluster address."""

    def __init__(self, model: str, opts: TagOptions, address: str, workers: int, device: str = "cpu",
                 docs_per_batch: int = 64):
        self.model, self.opts, self.workers, self.device = model, opts, workers, device
        self.docs_per_batch = docs_per_batch
        _start_ray(address, workers)

    def run(self, sources: Sequence[str], bad: BadLines) -> Iterator[tuple[int, bytes | None, int, int]]:
        import os

        import ray.data

        if "-" in sources:
            raise NertoolError("--ray reads files, not standard input")
        if not sources:
            return
        paths = [os.path.abspath(s) for s in sources]
        names = dict(zip(paths, sources))
        order = {name: k for k, name in enumerate(sources)}
        gpu = self.device.startswith("cuda")
        ds = ray.data.read_binary_files(paths, include_paths=True)
        ds = ds.flat_map(file_documents, fn_kwargs={"names": names, "input_format": self.opts.input_format,
                                                     "encoding": self.opts.encoding,
                                                     "token_column": self.opts.token_column,
                                                     "skip_bad": bad.skip})
        ds = ds.map_batches(TagBatch, batch_size=self.docs_per_batch, concurrency=self.workers,
                            num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0,
                            fn_constructor_kwargs={"model": self.model, "options": self.opts.to_dict(),
                                                   "device": self.device})
        last = None
        with _unwrapped_errors():
            for row in ds.iter_rows():
                k = order[row["path"]]
                if last is not None and k != last:
                    yield last, None, 0, 0  # rows come in input order: the input before is complete
                last = k
                yield k, row["output"].encode("utf-8"), int(row["tokens"]), 0
        if last is not None:
            yield last, None, 0, 0


def _start_ray(address: str, workers: int) -> None:
    import logging

    try:
        import ray
        import ray.data
    except ImportError:
        raise NertoolError("--ray needs Ray Data: pip install 'nertool[ray]'") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        if address == "local":
            # one CPU beyond the actors' for the reading tasks, or the pipeline would wait for ever
            ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False


@contextlib.contextmanager
def _unwrapped_errors() -> Iterator[None]:
    """A NertoolError raised in a Ray task arrives wrapped by Ray: raise it as itself."""
    try:
        yield
    except NertoolError:
        raise
    except Exception as e:
        cause: BaseException | None = e
        while cause is not None:
            if isinstance(cause, NertoolError):
                raise NertoolError(str(cause)) from None
            cause = getattr(cause, "cause", None) or cause.__cause__
        raise
