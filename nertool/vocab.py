"""Word and character vocabularies.

Words: a ``tokenizers`` WordLevel model whose normaliser (digit folding, lower-casing) is part of
the saved vocabulary, so tagging normalises exactly as training did. Ids are laid out as
``[PAD]=0, [UNK]=1``, then the training words (these get trainable vectors), then words known only
from pretrained embeddings (frozen vectors; usable at tagging time although never seen in training).

A *cased* vocabulary keeps the case of training words (``Apple`` and ``apple`` get rows of their
own) while pretrained-only words are stored lower-cased; a word missing in its own case is looked
up again lower-cased.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, normalizers

from .errors import ModelError
from .fileio import atomic_write_text

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1


def make_normalizer(lowercase: bool, digits_to_zero: bool, cased: bool = False):
    """The word normaliser; a ``cased`` vocabulary keeps case here and lower-cases only on fallback."""
    parts = []
    if digits_to_zero:
        parts.append(normalizers.Replace(Regex(r"\d"), "0"))
    if lowercase and not cased:
        parts.append(normalizers.Lowercase())
    return normalizers.Sequence(parts)


class WordVocab:
    """Normalised word -> id; ``n_tuned`` ids (from 0) belong to words seen in training."""

    def __init__(self, tokenizer: Tokenizer, n_tuned: int, cased: bool = False):
        self.tokenizer = tokenizer
        self.n_tuned = n_tuned
        self.cased = cased
        self._lower = normalizers.Lowercase()

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        pretrained_words: Sequence[str] | None = None,
        lowercase: bool = True,
        digits_to_zero: bool = True,
        min_count: int = 1,
        cased: bool = False,
    ) -> "WordVocab":
        """``cased`` (with ``lowercase``): training words keep their case, the rest is lower-cased."""
        cased = cased and lowercase
        norm = make_normalizer(lowercase, digits_to_zero, cased)
        lower = normalizers.Lowercase()
        counts = Counter(norm.normalize_str(w) for toks in sentences for w in toks)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        vocab = {PAD: PAD_ID, UNK: UNK_ID}
        for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if c >= min_count:
                vocab[w] = len(vocab)
        n_tuned = len(vocab)
        for w in pretrained_words or ():
            w = norm.normalize_str(w)
            if cased:
                w = lower.normalize_str(w)
            if w not in vocab:
                vocab[w] = len(vocab)
        tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
        tok.normalizer = norm
        return cls(tok, n_tuned, cased)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def normalize(self, word: str) -> str:
        return self.tokenizer.normalizer.normalize_str(word)

    def pretrained_key(self, form: str) -> str:
        """The form of a vocabulary entry under which pretrained vectors are looked up."""
        return self._lower.normalize_str(form) if self.cased else form

    def encode(self, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
        """Ids of each token of each (pre-tokenised) sentence."""
        out = []
        for toks, enc in zip(sentences, self.tokenizer.encode_batch([list(s) for s in sentences], is_pretokenized=True)):
            ids = enc.ids
            if len(ids) != len(toks):  # an empty token string; never produced by our readers
                ids = [self.tokenizer.token_to_id(self.normalize(t)) if t else UNK_ID for t in toks]
                ids = [UNK_ID if i is None else i for i in ids]
            if self.cased and UNK_ID in ids:
                get = self.tokenizer.token_to_id
                ids = [(get(self.pretrained_key(self.normalize(t))) or UNK_ID) if i == UNK_ID and t else i
                       for i, t in zip(ids, toks)]
            out.append(ids)
        return out

    def ids_to_words(self) -> list[str]:
        vocab = self.tokenizer.get_vocab()
        words = [""] * len(vocab)
        for w, i in vocab.items():
            words[i] = w
        return words

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.tokenizer.to_str())

    @classmethod
    def load(cls, path: str | Path, n_tuned: int, cased: bool = False) -> "WordVocab":
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exception
            raise ModelError(f"{path}: cannot read word vocabulary: {e}") from None
        return cls(tok, n_tuned, cased)


class CharVocab:
    """Character -> id, with ``0`` for padding and ``1`` for unknown characters."""

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.index = {c: i + 2 for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 1) -> "CharVocab":
        counts = Counter(c for toks in sentences for w in toks for c in w)
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    def __len__(self) -> int:
        return len(self.chars) + 2

    def encode_word(self, word: str, max_chars: int) -> list[int]:
        get = self.index.get
        return [get(c, UNK_ID) for c in word[:max_chars]]

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
