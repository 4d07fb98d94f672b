"""Export a model to one self-contained TorchScript file: vocabularies, normalisation, weights,
labels, constrained batched Viterbi and metadata. Loadable with plain ``torch.jit.load``."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from torch import nn

from .checkpoint import STRUCTURAL, ModelBundle, load_model, resolve_model, structure
from .decoding import viterbi
from .errors import ModelError
from .fileio import atomic_write_bytes
from .model import Emitter
from .tags import label_map

MAGIC = "nertool-torchscript"


class ScriptTagger(nn.Module):
    """Token strings in, tag strings out (``tag``); or tensors in, tag ids out (``forward``)."""

    def __init__(self, bundle: ModelBundle, char_table: Dict[str, str], lower_table: Dict[str, str]):
        super().__init__()
        m = bundle.model
        self.emitter: Emitter = m.emitter
        start, end, trans = (t.detach().clone() for t in m.transition_scores())
        self.register_buffer("start", start)
        self.register_buffer("end", end)
        self.register_buffer("transitions", trans)
        self.labels: List[str] = _output_labels(bundle)
        self.word_index: Dict[str, int] = dict(bundle.words.tokenizer.get_vocab())
        self.char_index: Dict[str, int] = dict(bundle.chars.index)
        self.char_table: Dict[str, str] = char_table  # per-character normalisation (lower-casing, digits)
        # a cased vocabulary looks a word up again lower-cased when its own spelling is unknown
        self.cased: bool = bundle.words.cased
        # (typed explicitly: TorchScript cannot infer the type of an empty dict)
        self.lower_table = torch.jit.Attribute(lower_table, Dict[str, str])
        self.max_chars: int = m.config.max_word_chars
        self.unk: int = 1
        self.metadata: str = json.dumps(_metadata(bundle))

    def forward(
        self, words: torch.Tensor, chars: torch.Tensor, char_index: torch.Tensor, mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Tensor entry point (see ``nertool.batching.Batch``): returns Viterbi tag ids
        (batch, seq_len) and their path scores (batch,)."""
        em = self.emitter(words, chars, char_index, mask)
        return viterbi(em, mask, self.start, self.end, self.transitions)

    @torch.jit.export
    def code_points(self, word: str) -> List[str]:
        """The characters of ``word`` (TorchScript strings index UTF-8 bytes, so decode by hand)."""
        out: List[str] = []
        i = 0
        n = len(word)
        while i < n:
            lead = ord(word[i])
            k = 1
            if lead >= 0xF0:
                k = 4
            elif lead >= 0xE0:
                k = 3
            elif lead >= 0xC0:
                k = 2
            out.append(word[i : i + k])
            i += k
        return out

    @torch.jit.export
    def normalize(self, word: str) -> str:
        out: List[str] = []
        for c in self.code_points(word):
            out.append(self.char_table.get(c, c))
        return "".join(out)

    @torch.jit.export
    def word_id(self, word: str) -> int:
        """The vocabulary id of a token (``unk`` when unknown)."""
        form = self.normalize(word)
        i = self.word_index.get(form, self.unk)
        if i == self.unk and self.cased:
            low: List[str] = []
            for c in self.code_points(form):
                low.append(self.lower_table.get(c, c))
            i = self.word_index.get("".join(low), self.unk)
        return i

    @torch.jit.export
    def encode(self, sentences: List[List[str]]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token lists -> (words, chars, char_index, mask) tensors on the module's device."""
        b = len(sentences)
        t = 1
        for s in sentences:
            t = max(t, len(s))
        words = torch.zeros(b, t, dtype=torch.long)
        char_index = torch.zeros(b, t, dtype=torch.long)
        mask = torch.zeros(b, t, dtype=torch.bool)
        rows: Dict[str, int] = {}
        distinct: List[List[str]] = []
        for i, s in enumerate(sentences):
            for j, w in enumerate(s):
                words[i, j] = self.word_id(w)
                mask[i, j] = True
                r = rows.get(w)
                if r is None:
                    r = len(distinct) + 1
                    rows[w] = r
                    distinct.append(self.code_points(w)[: self.max_chars])
                char_index[i, j] = r
        width = 1
        for cs in distinct:
            width = max(width, len(cs))
        chars = torch.zeros(len(distinct) + 1, width, dtype=torch.long)
        for r, cs in enumerate(distinct):
            for k, c in enumerate(cs):
                chars[r + 1, k] = self.char_index.get(c, self.unk)
        dev = self.start.device
        return words.to(dev), chars.to(dev), char_index.to(dev), mask.to(dev)

    @torch.jit.export
    def tag(self, sentences: List[List[str]]) -> List[List[str]]:
        """Tags of each sentence, in the model's own tag scheme."""
        out: List[List[str]] = []
        if len(sentences) == 0:
            return out
        words, chars, char_index, mask = self.encode(sentences)
        tags, _ = self.forward(words, chars, char_index, mask)
        rows: List[List[int]] = tags.cpu().tolist()
        for i, s in enumerate(sentences):
            out.append([self.labels[k] for k in rows[i][: len(s)]])
        return out


def _output_labels(bundle: ModelBundle) -> List[str]:
    """Labels in the corpus's scheme (exact for every valid sequence of the internal scheme)."""
    labels = label_map(bundle.labels, bundle.internal_scheme, bundle.scheme)
    if labels is None:
        raise ModelError(f"export supports models reported in IOB2 or in their internal scheme, not {bundle.scheme}")
    return labels


def _metadata(bundle: ModelBundle) -> dict:
    return {
        **bundle.meta,
        "format": MAGIC,
        "format_version": 1,
        **structure(bundle),
        "output_labels": _output_labels(bundle),
    }


def char_normalization_table(bundle: ModelBundle, norm=None) -> Dict[str, str]:
    """Every character the word normaliser (or ``norm``) changes, with its replacement (computed
    by running the ``tokenizers`` normaliser over all of Unicode)."""
    norm = norm or bundle.words.tokenizer.normalizer
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    normalized = [norm.normalize_str(c) for c in chars]
    return {c: n for c, n in zip(chars, normalized) if c != n}


def export(model: str | Path, out: str | Path) -> Path:
    """Write ``model`` (a directory or bundled name) as one TorchScript file at ``out``."""
    bundle = load_model(resolve_model(model))
    from tokenizers import normalizers

    lower = char_normalization_table(bundle, normalizers.Lowercase()) if bundle.words.cased else {}
    tagger = ScriptTagger(bundle, char_normalization_table(bundle), lower).eval()
    for p in tagger.parameters():
        p.requires_grad_(False)  # inference only: no autograd bookkeeping in the exported file
    module = torch.jit.script(tagger)
    buf = io.BytesIO()
    torch.jit.save(module, buf, _extra_files={"nertool.json": module.metadata})
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)


def is_torchscript(path: str | Path) -> bool:
    """True if ``path`` is a file that looks like a TorchScript archive (a zip)."""
    p = Path(path)
    if not p.is_file():
        return False
    with p.open("rb") as f:
        return f.read(4) == b"PK\x03\x04"


class ScriptedModel:
    """The parts of :class:`~nertool.model.BiLstmCrf` that tagging uses, over a loaded export."""

    def __init__(self, module, meta: dict):
        from .config import ModelConfig

        self.module = module
        self.labels = list(meta["labels"])
        self.config = ModelConfig.from_dict(meta["model"])
        self.training = False

    def emissions(self, words, chars, char_index, mask):
        return self.module.emitter(words, chars, char_index, mask)

    def word_features(self, chars):
        return self.module.emitter.word_features(chars)

    def emissions_from_features(self, words, features, char_index, mask):
        return self.module.emitter.from_features(words, features, char_index, mask)

    def transition_scores(self):
        return self.module.start, self.module.end, self.module.transitions

    def to(self, device):
        self.module = self.module.to(device)
        flatten_rnn_weights(self.module)
        return self

    def eval(self):
        self.module.eval()
        return self

    def train(self, mode: bool = True):
        return self


def flatten_rnn_weights(module: torch.nn.Module) -> None:
    """Put the weights of each LSTM/GRU inside a (scripted) module into one cuDNN buffer.

    ``torch.jit.load(..., map_location="cuda")`` leaves them apart, and cuDNN then copies them
    together (with a warning) on every call. A no-op on CPU and where cuDNN is not used.
    """
    from torch.backends.cudnn import rnn as cudnn_rnn

    for sub in module.modules():
        if getattr(sub, "original_name", type(sub).__name__) not in ("LSTM", "GRU"):
            continue
        weights = list(sub._flat_weights)
        if not weights or not weights[0].is_cuda or not torch._use_cudnn_rnn_flatten_weight():
            continue
        with torch.no_grad():
            torch._cudnn_rnn_flatten_weight(
                weights, 4 if sub.bias else 2, sub.input_size, cudnn_rnn.get_cudnn_mode(sub.mode),
                sub.hidden_size, sub.proj_size, sub.num_layers, sub.batch_first, bool(sub.bidirectional))


def read_metadata(path: str | Path) -> dict:
    extra = {"nertool.json": ""}
    try:
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        meta = json.loads(extra["nertool.json"])
    except (RuntimeError, ValueError) as e:
        raise ModelError(f"{path}: not a valid nertool TorchScript file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if meta.get("format") != MAGIC:
        raise ModelError(f"{path}: not a nertool TorchScript file")
    return meta


def load_exported(path: str | Path, device: str = "cpu") -> ModelBundle:
    """A :class:`ModelBundle` over an exported file, for the Tagger and ``nertool evaluate``."""
    from tokenizers import Tokenizer, models

    from .vocab import UNK, CharVocab, WordVocab, make_normalizer

    meta = read_metadata(path)
    module = torch.jit.load(str(path), map_location=device)
    flatten_rnn_weights(module)
    m = meta["model"]
    tok = Tokenizer(models.WordLevel(dict(module.word_index), unk_token=UNK))
    cased = bool(m["lowercase"] and m.get("cased_words", False))
    tok.normalizer = make_normalizer(m["lowercase"], m["digits_to_zero"], cased)
    index = dict(module.char_index)
    chars = CharVocab([c for c, _ in sorted(index.items(), key=lambda kv: kv[1])])
    model = ScriptedModel(module, meta)
    info = {k: v for k, v in meta.items() if k not in STRUCTURAL}
    return ModelBundle(model, WordVocab(tok, meta["n_tuned"], cased), chars, meta["scheme"], meta["internal_scheme"], info)  # type: ignore[arg-type]


def load_any(model: str | Path, device: str = "cpu") -> ModelBundle:
    """A model directory, an exported TorchScript file or a bundled model name."""
    path = resolve_model(model)
    if is_torchscript(path):
        return load_exported(path, device)
    return load_model(path)
