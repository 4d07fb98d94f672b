"""Frozen configuration dataclasses; TOML files with sections ``[data]``, ``[model]``, ``[train]``.

Unknown keys are an error, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomllib

from nertool.errors import ConfigError

# the allowed values of the choice fields, one place for the configs and the CLI
DATA_FORMATS = ("auto", "conll", "conllu", "prodigy", "prodigy-binary", "doccano", "labelstudio", "argilla",
                "spacy")  # from prodigy on: nertool.data.annotations
SCHEMES = ("auto", "IOB1", "IOB2", "BIOES", "none")
TAG_FIELDS = ("upos", "xpos")
CHAR_ENCODERS = ("cnn", "lstm", "none")
RNNS = ("lstm", "gru")
DROPOUT_MASKS = ("token", "sequence")
PRECISIONS = ("float16", "float32")
ATTENTION_COMBINES = ("residual", "concat")
OPTIMIZERS = ("adam", "nadam", "sgd")
INTERNAL_SCHEMES = ("BIOES", "same")
EVAL_MODES = ("default", "strict")  # seqeval: default (conlleval-compatible) or strict


_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
          "str | None": "a string"}


def _check_type(name: str, annotation: str, value: Any) -> None:
    """ConfigError unless ``value`` is of the field's declared type: no bool for a number, no
    string for a bool, no float for an integer (an integer is a fine float)."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "str | None": value is None or isinstance(value, str),
    }.get(annotation, True)
    if not ok:
        what = "a finite number" if annotation == "float" else _TYPES[annotation]
        raise ConfigError(f"{name} must be {what}, got {value!r}")


class _Strict:
    """Mixin: construction from a dict that rejects unknown keys and checks value types."""

    section = ""

    def _check_types(self) -> None:
        for f in fields(self):
            _check_type(f"{self.section}.{f.name}" if self.section else f.name, str(f.type), getattr(self, f.name))

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = ""):
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a table of keys, got {d!r}")
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(names)}")
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """A copy with ``changes`` applied; ``None`` values are ignored (unset CLI options)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes)


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")


def _at_most(section: str, obj: Any, limits: dict[str, float]) -> None:
    """Upper bounds: a value past them is a typo or a slip of a digit (``hidden_size = 100000``), and
    would otherwise fail deep inside torch or fill the memory."""
    for name, high in limits.items():
        v = getattr(obj, name)
        if isinstance(v, (int, float)) and not v <= high:
            raise ConfigError(f"{section}.{name} must be at most {high:,}, got {v!r}")


# sizes far above any published Bi-LSTM-CRF (NCRF++, flair: up to 1,024 units, 2 to 3 layers)
MODEL_LIMITS = {"word_dim": 4096, "char_dim": 1024, "char_hidden": 2048, "char_kernel": 15, "max_word_chars": 1000,
                "hidden_size": 4096, "num_layers": 16, "attention_heads": 64, "attention_window": 1_000_000}
TRAIN_LIMITS = {"batch_size": 1_000_000, "eval_batch_size": 1_000_000, "epochs": 1_000_000, "patience": 1_000_000,
                "min_updates": 10**12, "threads": 4096, "average_last": 1_000_000, "max_minutes": 10**9,
                "clip": 1e12, "seed": 2**63 - 1}


@dataclass(frozen=True)
class DataConfig(_Strict):
    section = "data"

    format: str = "auto"  # auto | conll | conllu
    token_column: int = 0
    tag_column: int = -1
    tag_field: str = "upos"  # CoNLL-U: upos | xpos
    scheme: str = "auto"  # auto | IOB1 | IOB2 | BIOES | none
    encoding: str = "utf-8"
    strict: bool = False  # reject ill-formed chunks instead of repairing them

    def __post_init__(self):
        self._check_types()
        _choice("data.format", self.format, DATA_FORMATS)
        _choice("data.scheme", self.scheme, SCHEMES)
        _choice("data.tag_field", self.tag_field, TAG_FIELDS)


@dataclass(frozen=True)
class ModelConfig(_Strict):
    section = "model"

    embeddings: str | None = None  # None | "glove-6b-50d" | path to a GloVe/word2vec text file
    word_dim: int = 50  # used when there are no pretrained embeddings
    lowercase: bool = True  # lower-case words for the word-embedding lookup
    digits_to_zero: bool = True  # map every digit to 0 for the word-embedding lookup
    cased_words: bool = False  # with lowercase: training words keep their case (a row per spelling)
    char_encoder: str = "cnn"  # cnn | lstm | none
    char_dim: int = 30
    char_hidden: int = 50  # CNN filters, or LSTM hidden size (both directions together)
    char_kernel: int = 3
    case_features: bool = True  # add the word's shape (capitalised, all caps, digits...) to its vector
    max_word_chars: int = 40  # characters of a word seen by the char encoder (the rest are cut)
    rnn: str = "lstm"  # lstm | gru
    hidden_size: int = 200  # per direction
    num_layers: int = 2
    dropout: float = 0.5
    dropout_mask: str = "token"  # token: a fresh mask for every token | sequence: one mask per sentence (locked)
    word_dropout: float = 0.05  # probability of replacing a training word by the unknown word
    tuned_dropout: float = 0.0  # probability of dropping a word's trained correction, keeping its pretrained vector
    constrain: bool = True  # forbid transitions invalid in the tag scheme (training and decoding)
    # the frozen pretrained vectors, as training sees them and the model stores them: float16
    # halves the saved table (400k GloVe words: 40 MB, not 80) at no loss (measured in BENCHMARKS.md)
    pretrained_precision: str = "float16"  # float16 | float32
    # masked multi-head self-attention over the Bi-LSTM states, before the emission layer
    attention: bool = False
    attention_heads: int = 4  # must divide 2 * hidden_size
    attention_dropout: float = 0.1
    attention_combine: str = "concat"  # concat: [states; attention] | residual: layer_norm(states + attention)
    attention_window: int = 128  # a token attends to tokens at most this far away (all of a shorter sentence)

    def __post_init__(self):
        self._check_types()
        _choice("model.char_encoder", self.char_encoder, CHAR_ENCODERS)
        _choice("model.rnn", self.rnn, RNNS)
        _choice("model.dropout_mask", self.dropout_mask, DROPOUT_MASKS)
        _choice("model.pretrained_precision", self.pretrained_precision, PRECISIONS)
        _choice("model.attention_combine", self.attention_combine, ATTENTION_COMBINES)
        _positive("model.attention_heads", self.attention_heads)
        _positive("model.attention_window", self.attention_window)
        if self.attention and (2 * self.hidden_size) % self.attention_heads:
            raise ConfigError(f"model.attention_heads ({self.attention_heads}) must divide 2 * hidden_size ({2 * self.hidden_size})")
        if not isinstance(self.attention_dropout, (int, float)) or not 0 <= self.attention_dropout < 1:
            raise ConfigError(f"model.attention_dropout must be in [0, 1), got {self.attention_dropout!r}")
        for name in ("word_dim", "char_dim", "char_hidden", "char_kernel", "max_word_chars", "hidden_size", "num_layers"):
            _positive(f"model.{name}", getattr(self, name))
        _at_most("model", self, MODEL_LIMITS)
        for name in ("dropout", "word_dropout", "tuned_dropout"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v <= (1 if name == "tuned_dropout" else 0.99):
                raise ConfigError(f"model.{name} must be in [0, 1), got {v!r}")


@dataclass(frozen=True)
class TrainConfig(_Strict):
    section = "train"

    optimizer: str = "adam"  # adam | nadam (Adam with Nesterov momentum) | sgd
    lr: float = 0.002
    momentum: float = 0.9  # SGD only
    lr_decay: float = 0.05  # lr_epoch = lr / (1 + lr_decay * epoch)
    weight_decay: float = 0.0
    clip: float = 5.0  # gradient norm clipping; 0 disables
    batch_size: int = 0  # sentences per batch (per process); 0: from the corpus size (nertool.training.budget)
    epochs: int = 0  # 0: from the corpus size, enough for min_updates and at least 40
    min_updates: int = 2000  # the budget automatic epochs reach; patience never stops a run before it
    patience: int = 8  # epochs without a better dev F1 before stopping; 0 disables
    seed: int = 42
    internal_scheme: str = "BIOES"  # scheme used inside the model: BIOES | same
    max_minutes: float = 0.0  # wall-clock budget; 0 means none
    threads: int = 0  # torch threads; 0 leaves torch's default
    eval_batch_size: int = 512
    dev_fraction: float = 0.0  # hold out this part of train as dev when no dev set is given
    ema: float = 0.999  # decay of the exponential moving average of the weights used for dev/test/save; 0 disables
    # checkpoint averaging: dev, test and the saved model use the mean of the weights evaluated at
    # the ends of the last N epochs (the EMA weights when ema is on); 0 or 1: none
    average_last: int = 0
    # auto: a corpus under 2,048 training sentences gets the small-corpus settings for every key
    # left at its default (nertool.training.budget); off: the defaults above whatever the size
    small_corpus: str = "auto"

    def __post_init__(self):
        self._check_types()
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _choice("train.small_corpus", self.small_corpus, ("auto", "off"))
        _choice("train.internal_scheme", self.internal_scheme, INTERNAL_SCHEMES)
        for name in ("lr", "eval_batch_size"):
            _positive(f"train.{name}", getattr(self, name))
        for name in ("momentum", "lr_decay", "weight_decay", "clip", "patience", "max_minutes", "threads", "dev_fraction",
                     "average_last", "batch_size", "epochs", "min_updates"):
            _positive(f"train.{name}", getattr(self, name), allow_zero=True)
        _positive("train.seed", self.seed, allow_zero=True)
        _at_most("train", self, TRAIN_LIMITS)
        if not 0 <= self.ema < 1:
            raise ConfigError(f"train.ema must be in [0, 1), got {self.ema}")
        if self.dev_fraction >= 1:
            raise ConfigError(f"train.dev_fraction must be below 1, got {self.dev_fraction}")


@dataclass(frozen=True)
class Config(_Strict):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config"):
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a table of sections")
        unknown = sorted(set(d) - {"data", "model", "train"})
        if unknown:
            raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; known: data, model, train")
        try:
            return cls(
                data=DataConfig.from_dict(d.get("data", {}), f"{where} [data]"),
                model=ModelConfig.from_dict(d.get("model", {}), f"{where} [model]"),
                train=TrainConfig.from_dict(d.get("train", {}), f"{where} [train]"),
            )
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None

    def override(self, changes: dict[str, dict[str, Any]]) -> "Config":
        """A copy with ``{section: {field: value}}`` applied; ``None`` values are left unset."""
        unknown = sorted(set(changes) - {"data", "model", "train"})
        if unknown:
            raise ConfigError(f"unknown section(s) {', '.join(unknown)}")
        return Config(**{name: getattr(self, name).replace(**changes.get(name, {})) for name in ("data", "model", "train")})

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        path = Path(path)
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
        return cls.from_dict(d, str(path))

    def to_toml(self, only_changed: bool = False) -> str:
        """The configuration as TOML that :meth:`from_toml` reads back (with ``only_changed``: the
        fields that differ from the defaults)."""
        default = Config().to_dict()
        out = []
        for section, values in self.to_dict().items():
            rows = [f"{k} = {_toml_value(v)}" for k, v in values.items()
                    if v is not None and not (only_changed and default[section].get(k) == v)]
            if rows:
                out += [f"[{section}]", *rows, ""]
        return "\n".join(out)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a TOML basic string is a JSON string
