"""Tagging on a Ray cluster with Ray Data (the optional extra ``nertool[ray]``).

:class:`TagBatch` is a callable class for ``Dataset.map_batches``: each actor of the pool loads the
model once and turns a batch of documents into output records. It reads either a ``document``
column (what :func:`read_inputs` makes from input files) or a text column of any dataset:

    import ray
    from nertool.raydata import TagBatch
    ds = ray.data.read_json("s3://bucket/news/")                     # rows with "text" (and "id")
    tagged = ds.map_batches(TagBatch, fn_constructor_kwargs={"model": "en"},
                            concurrency=8, num_cpus=1, batch_size=128)  # or num_gpus=1, device="cuda"
    tagged.write_json("s3://bucket/news-ner/")                      # columns path, doc, output

:func:`tag_with_ray` is what ``nertool tag ... --ray ADDRESS -o DIR`` runs: input files -> documents
(one reader task per file) -> actor pool -> JSONL shards in ``DIR``, in input order.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from .errors import BadLines, NertoolError
from .inputs import Document, read_documents
from .text import Token
from .workers import RenderOptions, tag_documents


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
    """``map_batches`` callable: a batch of documents -> ``{"path", "doc", "output"}``, where
    ``output`` is the document's rendered records (JSONL lines for ``jsonl`` and ``docs``)."""

    def __init__(self, model: str = "en", *, output_format: str = "jsonl", nbest: int = 0, scores: bool = True,
                 lang: str = "en", batch_size: int = 256, device: str = "cpu", threads: int = 1,
                 text_column: str = "text", id_column: str | None = "id", doc_context: float = 0.0):
        import torch

        from .tagger import Tagger

        torch.set_num_threads(threads)
        self.tagger = Tagger.load(model, device=device, batch_size=batch_size)
        self.opts = RenderOptions(output_format, nbest, batch_size, scores, lang, doc_context)
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
        outputs = [b.decode("utf-8") for b in tag_documents(self.tagger, docs, self.opts)[0]]
        return {"path": np.array([d.path for d in docs], dtype=object), "doc": np.array([d.index for d in docs]),
                "output": np.array(outputs, dtype=object)}


def _plain(v: Any) -> Any:
    """A numpy scalar as the Python value it holds (ids go into JSON)."""
    return v.item() if hasattr(v, "item") else v


def _jsonl_sink(out_dir: str):
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonlShards(BlockBasedFileDatasink):
        """Each block's ``output`` strings, one after another, as a ``.jsonl`` shard."""

        def __init__(self, path: str):
            super().__init__(path, file_format="jsonl")

        def write_block_to_file(self, block, file) -> None:
            for text in block.to_arrow().column("output").to_pylist():
                file.write(text.encode("utf-8"))

    return JsonlShards(out_dir)


def tag_with_ray(sources: Sequence[str], out_dir: str, model: str, opts, address: str, workers: int,
                 device: str = "cpu", docs_per_batch: int = 64) -> None:
    """Tag ``sources`` (files) on the Ray cluster at ``address`` (``local``: start one here with
    ``workers`` CPUs for the actors and one for reading; ``auto``: the running cluster, which needs
    CPUs beyond the actors' for reading) with a pool of ``workers`` actors; JSONL shards go to
    ``out_dir``."""
    import os

    try:
        import ray
        import ray.data
    except ImportError:
        raise NertoolError("--ray needs Ray Data: pip install 'nertool[ray]'") from None
    paths = [os.path.abspath(s) for s in sources]
    names = dict(zip(paths, sources))
    import logging

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
    gpu = device.startswith("cuda")
    ds = ray.data.read_binary_files(paths, include_paths=True)
    ds = ds.flat_map(file_documents, fn_kwargs={"names": names, "input_format": opts.input_format,
                                                 "encoding": opts.encoding, "token_column": opts.token_column,
                                                 "skip_bad": opts.skip_bad})
    ds = ds.map_batches(TagBatch, batch_size=docs_per_batch, concurrency=workers,
                        num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0,
                        fn_constructor_kwargs={"model": model, "output_format": opts.output_format,
                                               "nbest": opts.nbest, "scores": opts.scores, "lang": opts.lang,
                                               "batch_size": opts.batch_size, "device": device,
                                               "doc_context": opts.doc_context})
    try:
        ds.write_datasink(_jsonl_sink(out_dir))
    except Exception as e:  # a NertoolError raised in a task arrives wrapped by Ray
        cause: BaseException | None = e
        while cause is not None:
            if isinstance(cause, NertoolError):
                raise NertoolError(str(cause)) from None
            cause = getattr(cause, "cause", None) or cause.__cause__
        raise
