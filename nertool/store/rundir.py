"""The one owner of the model and run directories' file names.

A model directory holds::

    config.json              format, versions, model config, labels, schemes, sizes, corpus, scores
    words.json               word vocabulary with its normaliser (a ``tokenizers`` tokenizer file)
    chars.json               character vocabulary
    model.safetensors        weights (never pickled)
    README.md                the model card

(The bundled models share one ``words.json``: their config.json's ``shared_words`` names it.)

A run directory (``nertool train --out``) is a model directory (its best model) plus::

    metrics.jsonl            one record per epoch
    metrics.png              the training curves
    train_state.json         where the loop stands (JSON half of the resumable state)
    train_state.safetensors  optimiser, averages and random state (tensor half)

Every other module reads and writes these files through the functions here.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from nertool.errors import ModelError, NertoolError
from nertool.fileio import atomic_write_bytes, atomic_write_text, is_nonempty_dir

CONFIG = "config.json"
WORDS = "words.json"
CHARS = "chars.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
METRICS = "metrics.jsonl"
PLOT = "metrics.png"
STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"
MODEL_FILES = (CONFIG, WORDS, CHARS, WEIGHTS)
RUN_FILES = (*MODEL_FILES, CARD, METRICS, PLOT, STATE_JSON, STATE_TENSORS)


def words_file(d: Path, config: dict[str, Any]) -> Path:
    """The word vocabulary of the model in ``d``: its own ``words.json``, or the file it shares with
    other models of its package (config.json's ``shared_words``: a path relative to ``d`` and the
    file's sha256, checked here)."""
    ref = config.get("shared_words")
    if ref is None:
        return d / WORDS
    try:
        path, digest = d / ref["file"], ref["sha256"]
        data = path.read_bytes()
    except (KeyError, TypeError):
        raise ModelError(f"{d / CONFIG}: malformed shared_words (needs file and sha256)") from None
    except OSError as e:
        raise ModelError(f"{d / CONFIG}: shared vocabulary {ref['file']} unreadable ({e.strerror or e})") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise ModelError(f"{path}: shared vocabulary does not match the sha256 in {d / CONFIG}")
    return path


def looks_like_model(path: str | Path) -> bool:
    """True when ``path`` is a directory holding any of a model's files."""
    p = Path(path)
    return any((p / f).exists() for f in (CONFIG, WEIGHTS, WORDS))


def holds_run(path: str | Path) -> bool:
    return (Path(path) / CONFIG).exists()


def has_state(path: str | Path) -> bool:
    return (Path(path) / STATE_JSON).exists()


def model_megabytes(path: str | Path) -> float:
    """The size of a model directory's model files (the card and training files not counted)."""
    d = Path(path)
    return sum((d / f).stat().st_size for f in MODEL_FILES if (d / f).exists()) / 2**20


def read_card(path: str | Path) -> str | None:
    p = Path(path) / CARD
    return p.read_text(encoding="utf-8") if p.is_file() else None


def prepare(out: Path, resume: bool, force: bool) -> None:
    """Create the run directory, refusing to train a new run into a non-empty one unless ``force``."""
    if out.exists() and not out.is_dir():
        raise NertoolError(f"{out}: exists and is not a directory; --out names a run directory")
    if not resume and is_nonempty_dir(out) and not force:
        what = "holds a run" if holds_run(out) else "is not empty"
        raise NertoolError(f"{out}: {what}; choose a new --out, --resume it, or --force to replace its run "
                           "files (other files are left alone)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".nertool-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise NertoolError(f"{out}: cannot write the run directory ({e.strerror or e})") from None


def read_state(out: Path) -> dict[str, Any]:
    """The JSON half of the resumable state in ``out``."""
    try:
        return json.loads((out / STATE_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NertoolError(f"{out}: cannot resume, no training state ({STATE_JSON} missing; not a nertool run "
                           "directory?)") from None
    except ValueError as e:
        raise NertoolError(f"{out}: cannot resume, corrupt training state: {e}") from None


def write_state(out: Path, state: dict[str, Any], tensors: bytes | None = None) -> None:
    """Write the resumable state: the tensors first, then the JSON that names the epoch, so a state
    is only used once both files are complete."""
    if tensors is not None:
        atomic_write_bytes(out / STATE_TENSORS, tensors)
    atomic_write_text(out / STATE_JSON, json.dumps(state))


def read_state_tensors(out: Path) -> bytes:
    try:
        return (out / STATE_TENSORS).read_bytes()
    except FileNotFoundError:
        raise NertoolError(f"{out}: cannot resume, no training state ({STATE_TENSORS} missing)") from None


def read_weights(out: Path) -> bytes:
    try:
        return (out / WEIGHTS).read_bytes()
    except FileNotFoundError:
        raise NertoolError(f"{out}: cannot resume, {WEIGHTS} is missing (the run directory is incomplete)") from None


def write_metrics(out: Path, history: list[dict[str, Any]]) -> Path:
    """Rewrite ``metrics.jsonl`` whole (never truncated before the run has an epoch to put in it);
    returns the path the training plot goes to."""
    atomic_write_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in history))
    return out / PLOT
