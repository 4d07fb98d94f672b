"""Where a model is: a path as given, or a bundled model by name (no torch imported here, so the
reading process of a multi-process run stays small)."""
from __future__ import annotations

import warnings
from pathlib import Path

from nertool.errors import ModelError
from nertool.store.rundir import CONFIG

BUNDLED_DIR = Path(__file__).parent.parent / "models"


def bundled_models() -> list[str]:
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG).is_file()) if BUNDLED_DIR.is_dir() else []


def resolve_model(name: str | Path) -> Path:
    """A model path: an existing path as given, else a bundled model of that name. A bare bundled
    name (``en``) means the bundled model even where a local file or folder of that name exists
    but holds no model (write ``./en`` for that one), with a warning saying so."""
    p = Path(name)
    bundled = isinstance(name, str) and "/" not in name and (BUNDLED_DIR / name / CONFIG).is_file()
    if p.exists() and not (bundled and not _holds_model(p)):
        return p
    if bundled:
        if p.exists():
            warnings.warn(f"{name}: the bundled model; the local {'folder' if p.is_dir() else 'file'} {name} holds "
                          f"no model (write ./{name} to mean it)", UserWarning, stacklevel=2)
        return BUNDLED_DIR / name
    avail = ", ".join(bundled_models()) or "none installed"
    raise ModelError(f"{name}: no such model directory or file, and no bundled model of that name (bundled: {avail})")


def model_fingerprint(name: str | Path) -> str:
    """A short digest of the model's files as they are on disk (path, names, sizes, times): it
    changes when the model is retrained or replaced in place, without reading the weights."""
    import hashlib

    path = resolve_model(name).resolve()
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    h = hashlib.sha256(str(path).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else ''}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _holds_model(p: Path) -> bool:
    return (p / CONFIG).is_file() or is_torchscript(p) or is_onnx(p)


def is_onnx(path: str | Path) -> bool:
    """True for a file named ``*.onnx`` (an ONNX file has no magic number to read)."""
    p = Path(path)
    return p.suffix.lower() == ".onnx" and p.is_file()


def is_torchscript(path: str | Path) -> bool:
    """True if ``path`` is a file that looks like a TorchScript archive (a zip)."""
    p = Path(path)
    if not p.is_file():
        return False
    with p.open("rb") as f:
        return f.read(4) == b"PK\x03\x04"


def check_new_output(output: Path, models: list[str], what: str, directory: bool = True) -> None:
    """NertoolError unless ``output`` may be written from ``models``: outside each of them and (for
    a ``directory``) new or empty. ``what`` names the output in the message."""
    from nertool.fileio import is_nonempty_dir

    dst = Path(output).resolve()
    for m in models:
        src = resolve_model(m).resolve()
        if dst == src or src in dst.parents:
            raise ModelError(f"{output}: would write over the model {m} ({src}); choose a path outside it")
    if directory and (is_nonempty_dir(output) or (output.exists() and not output.is_dir())):
        raise ModelError(f"{output}: choose a new or empty directory for the {what}")
