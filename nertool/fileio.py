"""Reading text files with clear errors, and atomic writes (temporary file, then rename)."""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from nertool.errors import DataFormatError


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """All lines of a text file without their line endings (LF, CRLF or CR).

    Raises DataFormatError for a missing, binary or wrongly encoded file.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, None, "no such file")
    if path.is_dir():
        raise DataFormatError(path, None, "is a directory, expected a file")
    data = path.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataFormatError(path, line, "file is not text (NUL byte found)")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataFormatError(
            path, line, f"file is not valid {encoding} (byte {data[e.start]:#04x}); try --encoding latin-1"
        ) from None
    except LookupError:
        raise DataFormatError(path, None, f"unknown encoding {encoding!r}") from None
    return [clean_line(line) for line in text.splitlines()]


_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"  # byte order mark, zero-width space / (non-)joiner, word joiner


def clean_line(line: str) -> str:
    """``line`` without the byte order marks at its start (files concatenated from several UTF-8
    files carry one per part); a line of only whitespace and invisible characters reads as blank."""
    if line[:1] == "\ufeff":
        line = line.lstrip("\ufeff")
    stripped = line.strip()
    if not stripped or not stripped.strip(_INVISIBLE):
        return ""
    return line


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename. A
    ``path`` that exists and is no regular file (``/dev/null``, ``/dev/stdout``, a pipe) is written
    directly: renaming over it would replace the device itself."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        try:
            with open(path, mode, **({} if "b" in mode else {"encoding": encoding, "newline": ""})) as f:
                yield f
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        if "b" in mode:
            f = os.fdopen(fd, mode)
        else:
            f = os.fdopen(fd, mode, encoding=encoding, newline="")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:  # a full disk, say: name the file being written
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


LOCK = ".nertool.lock"  # the lock file of a directory in use (a run directory, a bulk output)


def is_nonempty_dir(path: str | Path) -> bool:
    """True for a directory holding anything besides its lock file."""
    return Path(path).is_dir() and any(p.name != LOCK for p in Path(path).iterdir())


@contextlib.contextmanager
def locked(directory: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (created if absent) while the block runs; another
    process asking for it gets a NertoolError naming the holder (its pid, command and start). The
    lock is the kernel's (``flock``), so it goes with its process: a lock file left by a killed
    process is taken over, not obeyed."""
    import fcntl
    import json
    import sys
    import time

    from nertool.errors import NertoolError

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NertoolError(f"{directory}: exists and is not a directory; give a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise NertoolError(f"{directory}: cannot write the {what} ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise NertoolError(f"{directory}: in use by {_holder(fd)}; wait for it to end or choose another "
                               f"{what}") from None
        os.ftruncate(fd, 0)
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command,
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    import json

    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {info['pid']} ({info['command']}, since {info['since']})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb", encoding=None) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then act on them: a group of files written
    together (a model directory, a training state) is never left half-replaced. Outside the main
    thread signals cannot arrive here, and the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, object]] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signum, frame = caught[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
