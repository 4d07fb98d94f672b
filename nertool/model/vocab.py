"""Word and character vocabularies.

Words: a ``tokenizers`` WordLevel model whose normaliser (digit folding, lower-casing) travels
with the vocabulary, so tagging normalises exactly as training did. Ids are laid out as
``[PAD]=0, [UNK]=1``, then the training words (these get trainable vectors), then words known only
from pretrained embeddings (frozen vectors; usable at tagging time although never seen in training).

A *cased* vocabulary keeps the case of training words (``Apple`` and ``apple`` get rows of their
own) while pretrained-only words are stored lower-cased; a word missing in its own case is looked
up again lower-cased. :class:`WordVocab` is the one place that knows these rules: the model
directory, the exporter and the training code all ask it.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson
from tokenizers import Regex, Tokenizer, models, normalizers

from nertool.errors import ModelError
from nertool.fileio import atomic_write_text

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
WORDS_FORMAT = "nertool-words"


@dataclass(frozen=True)
class Normalization:
    """How a token becomes a vocabulary key: digits to 0, lower case (deferred to the fallback
    lookup when ``cased``)."""

    lowercase: bool = True
    digits_to_zero: bool = True
    cased: bool = False  # only with lowercase: training words keep their case

    def __post_init__(self):
        if self.cased and not self.lowercase:
            object.__setattr__(self, "cased", False)

    @classmethod
    def from_config(cls, model_config) -> "Normalization":
        """The normalisation a :class:`~nertool.config.ModelConfig` asks for."""
        return cls(model_config.lowercase, model_config.digits_to_zero, model_config.cased_words)

    def normalizer(self):
        """The ``tokenizers`` normaliser of the primary lookup."""
        parts = []
        if self.digits_to_zero:
            parts.append(normalizers.Replace(Regex(r"\d"), "0"))
        if self.lowercase and not self.cased:
            parts.append(normalizers.Lowercase())
        return normalizers.Sequence(parts)


def _char_table(norm) -> dict[str, str]:
    """Every character ``norm`` changes, with its replacement (the normaliser run over all of
    Unicode once): a per-character form of the normaliser for code without ``tokenizers``."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    return {c: n for c, n in zip(chars, (norm.normalize_str(c) for c in chars)) if c != n}


class WordVocab:
    """Normalised word -> id; ids below ``n_tuned`` belong to words seen in training."""

    def __init__(self, index: dict[str, int], n_tuned: int, norm: Normalization = Normalization()):
        self.norm = norm
        self.n_tuned = n_tuned
        self.tokenizer = Tokenizer(models.WordLevel(dict(index), unk_token=UNK))
        self.tokenizer.normalizer = norm.normalizer()
        self._lower = normalizers.Lowercase()

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        pretrained_words: Sequence[str] | None = None,
        norm: Normalization = Normalization(),
        min_count: int = 1,
    ) -> "WordVocab":
        """Training words (by frequency), then the pretrained words not among them."""
        primary = norm.normalizer()
        counts = Counter(primary.normalize_str(w) for toks in sentences for w in toks)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        vocab = {PAD: PAD_ID, UNK: UNK_ID}
        for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if c >= min_count:
                vocab[w] = len(vocab)
        trained = cls(vocab, len(vocab), norm)
        return trained.extended(pretrained_words) if pretrained_words else trained

    def extended(self, pretrained_words: Iterable[str]) -> "WordVocab":
        """This vocabulary with every pretrained word not yet in it appended, in the given order,
        under the form it is looked up by (:meth:`pretrained_key` of the normalised word)."""
        index = self.index()
        for w in pretrained_words:
            k = self.pretrained_key(self.normalize(w))
            if k not in index:
                index[k] = len(index)
        return WordVocab(index, self.n_tuned, self.norm)

    @property
    def cased(self) -> bool:
        return self.norm.cased

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def index(self) -> dict[str, int]:
        return self.tokenizer.get_vocab()

    def normalize(self, word: str) -> str:
        return self.tokenizer.normalizer.normalize_str(word)

    def pretrained_key(self, form: str) -> str:
        """The form of a vocabulary entry under which pretrained vectors are looked up."""
        return self._lower.normalize_str(form) if self.cased else form

    def encode(self, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
        """Ids of each token of each (pre-tokenised) sentence."""
        out = []
        get = self.tokenizer.token_to_id
        for toks, enc in zip(sentences, self.tokenizer.encode_batch([list(s) for s in sentences], is_pretokenized=True)):
            ids = enc.ids
            if len(ids) != len(toks):  # an empty token string; never produced by our readers
                ids = [(get(self.normalize(t)) if t else None) or UNK_ID for t in toks]
            if self.cased and UNK_ID in ids:
                ids = [(get(self.pretrained_key(self.normalize(t))) or UNK_ID) if i == UNK_ID and t else i
                       for i, t in zip(ids, toks)]
            out.append(ids)
        return out

    def ids_to_words(self) -> list[str]:
        words = [""] * len(self)
        for w, i in self.index().items():
            words[i] = w
        return words

    def truncated(self, limit: int, n_tuned: int) -> "WordVocab":
        """The first ``limit`` ids, of which ``n_tuned`` are trainable."""
        return WordVocab({w: i for w, i in self.index().items() if i < limit}, n_tuned, self.norm)

    def char_tables(self) -> tuple[dict[str, str], dict[str, str]]:
        """Per-character tables of the primary normaliser and of the lower-casing fallback
        (empty unless ``cased``), for lookups done without ``tokenizers`` (the exported file)."""
        return self._primary_table, (_char_table(self._lower) if self.cased else {})

    @cached_property
    def _primary_table(self) -> dict[str, str]:
        return _char_table(self.tokenizer.normalizer)

    def save(self, path: str | Path) -> None:
        """One JSON file: the normalisation settings, ``n_tuned`` and the ``tokenizers`` tokenizer."""
        doc = {"format": WORDS_FORMAT, "version": 1, "n_tuned": self.n_tuned, "normalization": asdict(self.norm),
               "tokenizer": json.loads(self.tokenizer.to_str())}
        atomic_write_text(path, json.dumps(doc, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path, legacy: tuple[int, Normalization] | None = None) -> "WordVocab":
        """Read a file written by :meth:`save`. Files of nertool 0.1 hold the bare tokenizer; for
        them ``legacy`` gives ``(n_tuned, normalisation)`` from the model's config."""
        try:
            doc = orjson.loads(Path(path).read_bytes())  # twice as fast as json on a 7 MB vocabulary
            if isinstance(doc, dict) and doc.get("format") == WORDS_FORMAT:
                n_tuned, norm, tok = doc["n_tuned"], Normalization(**doc["normalization"]), doc["tokenizer"]
            elif legacy is not None:
                (n_tuned, norm), tok = legacy, doc
            else:
                raise ValueError("not a nertool word vocabulary")
            index = tok["model"]["vocab"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{path}: cannot read word vocabulary: {e}") from None
        if not isinstance(index, dict) or not isinstance(n_tuned, int):
            raise ModelError(f"{path}: malformed word vocabulary")
        return cls(index, n_tuned, norm)


class CharVocab:
    """Character -> id, with ``0`` for padding and ``1`` for unknown characters."""

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.index = {c: i + 2 for i, c in enumerate(self.chars)}
        self._table: np.ndarray | None = None  # code point -> id, built on first use

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 1) -> "CharVocab":
        counts = Counter(c for toks in sentences for w in toks for c in w)
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    def __len__(self) -> int:
        return len(self.chars) + 2

    def encode_word(self, word: str, max_chars: int) -> list[int]:
        get = self.index.get
        return [get(c, UNK_ID) for c in word[:max_chars]]

    def encode_code_points(self, code_points: np.ndarray) -> np.ndarray:
        """The ids of an array of code points (any shape, unsigned 32-bit) as int64; the ids
        :meth:`encode_word` gives the same characters."""
        if self._table is None:
            singles = [(ord(c), i) for c, i in self.index.items() if len(c) == 1]
            table = np.full(max((cp for cp, _ in singles), default=0) + 2, UNK_ID, dtype=np.int64)
            for cp, i in singles:
                table[cp] = i
            self._table = table  # its last entry stands for every code point above the known ones
        return self._table[np.minimum(code_points, len(self._table) - 1)]

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps({"chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "CharVocab":
        try:
            chars = json.loads(Path(path).read_text(encoding="utf-8"))["chars"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{path}: cannot read character vocabulary: {e}") from None
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise ModelError(f"{path}: character vocabulary must be a list of strings")
        return cls(chars)
