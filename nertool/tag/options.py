"""How to tag: the one options type of every tagging surface (the Tagger, the CLI, the engines,
Ray). Frozen; unknown keys are rejected."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nertool.data.inputs import INPUT_FORMATS
from nertool.errors import ConfigError
from nertool.tag.output import OUTPUT_FORMATS

MAX_NBEST = 100  # sequences per sentence: more is never useful and costs memory linear in it


@dataclass(frozen=True)
class TagOptions:
    """What to compute for each sentence and how to read and write documents.

    ``nbest``: also the K best label sequences with their probabilities; ``scores``: CRF
    marginal confidences of spans and tokens (off: Viterbi only, faster); ``marginals``: each
    token's distribution over the output labels; ``doc_context`` > 0: the mentions of a name
    within a document pulled towards one entity type, with this weight. ``row_multiple`` > 1: the
    network sees each batch padded to a number of sentences that is a multiple of it (the results
    are the same): a long-running process then meets fewer batch shapes, and oneDNN, which prepares
    and keeps a kernel per shape, prepares fewer (the service uses 8; padding rows is nearly free,
    where padding lengths cost LSTM steps, BENCHMARKS.md 22.3)."""

    nbest: int = 0
    scores: bool = True
    marginals: bool = False
    doc_context: float = 0.0
    batch_size: int = 256
    row_multiple: int = 1  # each batch padded to a number of sentences that is a multiple of this
    lang: str = "en"  # of the text, for sentence splitting
    input_format: str = "auto"
    output_format: str = "jsonl"
    token_column: int = 0
    encoding: str = "utf-8"
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.nbest <= MAX_NBEST:
            raise ConfigError(f"nbest must be between 0 and {MAX_NBEST}, got {self.nbest}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.row_multiple < 1:
            raise ConfigError(f"row_multiple must be at least 1, got {self.row_multiple}")
        if not (math.isfinite(self.doc_context) and self.doc_context >= 0):
            raise ConfigError(f"doc_context must be a finite non-negative number, got {self.doc_context}")
        if self.input_format not in INPUT_FORMATS:
            raise ConfigError(f"unknown input format {self.input_format!r}; expected one of {', '.join(INPUT_FORMATS)}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown output format {self.output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        if self.nbest and self.output_format != "jsonl":
            raise ConfigError("n-best sequences are written in the jsonl output format only (--nbest needs --format jsonl)")

    @property
    def needs_posteriors(self) -> bool:
        """True when forward-backward must run (anything beyond the Viterbi tags)."""
        return self.scores or self.marginals or self.nbest > 0

    def with_(self, **changes: Any) -> "TagOptions":
        """A copy with ``changes``; unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown tagging option(s): {', '.join(unknown)}")
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TagOptions":
        return cls().with_(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
