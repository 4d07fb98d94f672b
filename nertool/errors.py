"""Errors that nertool raises for bad input; the CLI turns them into one line and exit code 2."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class NertoolError(Exception):
    """A user-facing error: bad input, bad options, a broken model directory."""


class ConfigError(NertoolError):
    """An invalid configuration value or an unknown configuration key."""


class DataFormatError(NertoolError):
    """Malformed input data, located by file and (1-based) line number."""

    def __init__(self, path: str | Path | None, line: int | None, message: str):
        self.path = None if path is None else str(path)
        self.line = line
        self.message = message
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # survives pickling (errors raised in worker processes)
        return (DataFormatError, (self.path, self.line, self.message))


class ModelError(NertoolError):
    """A model directory or file that is missing, incomplete or corrupt."""


@dataclass
class BadLines:
    """Where a reader meets a bad line: raise it (the default), or with ``skip`` count it and go
    on, keeping the first."""

    skip: bool = False
    count: int = 0
    first: DataFormatError | None = None

    def handle(self, error: DataFormatError) -> None:
        if not self.skip:
            raise error
        self.count += 1
        self.first = self.first or error
