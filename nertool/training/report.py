"""How training reports progress: a protocol the CLI implements with rich, and a silent default."""
from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    def start(self, epochs: int, steps_per_epoch: int) -> None: ...
    def step(self, epoch: int, loss: float, sentences: int = 1) -> None: ...
    def epoch_end(self, record: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...



class SilentReporter:
    def start(self, epochs, steps_per_epoch): pass
    def step(self, epoch, loss, sentences=1): pass
    def epoch_end(self, record): pass
    def message(self, text): pass

