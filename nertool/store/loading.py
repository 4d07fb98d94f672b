"""One way from a name to a model: a model directory, an exported TorchScript file or a bundled
model name becomes a :class:`~nertool.store.checkpoint.ModelBundle` whose network satisfies
:class:`TaggingModel`. The tagger, the evaluator and the exporter all load through here."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from nertool.config import ModelConfig
from nertool.errors import ConfigError, ModelError
from nertool.model.vocab import CharVocab, Normalization, WordVocab
from nertool.store.checkpoint import (
    STRUCTURAL,
    ModelBundle,
    check_export_metadata,
    load_model,
    read_config,
)
from nertool.store.locate import (  # noqa: F401 (re-exported)
    BUNDLED_DIR,
    bundled_models,
    is_onnx,
    is_torchscript,
    resolve_model,
)

EXPORT_FORMAT = "nertool-torchscript"
EXPORT_FORMAT_VERSION = 1


@runtime_checkable
class TaggingModel(Protocol):
    """What tagging and evaluation use of a network; :class:`~nertool.model.network.BiLstmCrf` and
    :class:`ExportedModel` both provide it."""

    labels: list[str]
    config: ModelConfig

    def word_features(self, chars: torch.Tensor) -> torch.Tensor:
        """(words, max_chars) character ids -> (words, feature_dim)."""
        ...

    def emissions(self, words: torch.Tensor, chars: torch.Tensor, char_index: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
        """(batch, seq_len) ids and mask -> (batch, seq_len, num_tags) tag scores."""
        ...

    def emissions_from_features(self, words: torch.Tensor, features: torch.Tensor, char_index: torch.Tensor,
                                mask: torch.Tensor) -> torch.Tensor:
        """:meth:`emissions` with the rows of :meth:`word_features` given."""
        ...

    def transition_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(start, end, transitions)``, constraint masks included."""
        ...

    def to(self, device: Any) -> Any: ...
    def eval(self) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...


class ExportedModel:
    """:class:`TaggingModel` over a loaded TorchScript export (a ``ScriptTagger``)."""

    def __init__(self, module: torch.jit.ScriptModule, meta: dict):
        self.module = module
        self.labels: list[str] = list(meta["labels"])
        self.config = ModelConfig.from_dict(meta["model"])
        self.training = False

    def word_features(self, chars):
        return self.module.emitter.word_features(chars)

    def emissions(self, words, chars, char_index, mask):
        return self.module.emitter(words, chars, char_index, mask)

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
        return self  # an export is inference only


def read_metadata(path: str | Path) -> dict:
    """The metadata stored in an exported file."""
    extra = {"nertool.json": ""}
    try:
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        meta = json.loads(extra["nertool.json"])
    except (RuntimeError, ValueError) as e:
        raise ModelError(f"{path}: not a valid nertool TorchScript file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return check_export_metadata(path, meta, EXPORT_FORMAT, EXPORT_FORMAT_VERSION, "TorchScript")


def model_info(model: str | Path) -> dict:
    """The config (model directory) or metadata (exported file) of a model, without loading it."""
    path = resolve_model(model)
    if is_onnx(path):
        from nertool.store.onnx_model import read_onnx_metadata

        return read_onnx_metadata(path)
    return read_metadata(path) if is_torchscript(path) else read_config(path)


def load_exported(path: str | Path, device: str = "cpu") -> ModelBundle:
    """A :class:`ModelBundle` over an exported file."""
    meta = read_metadata(path)
    module = torch.jit.load(str(path), map_location=device)
    flatten_rnn_weights(module)
    try:
        model = ExportedModel(module, meta)
        _check_exported(path, meta, model, module)
        words = WordVocab(dict(module.word_index), meta["n_tuned"], Normalization.from_config(model.config))
        index = dict(module.char_index)
        chars = CharVocab([c for c, _ in sorted(index.items(), key=lambda kv: kv[1])])
        info = {k: v for k, v in meta.items() if k not in STRUCTURAL}
        return ModelBundle(model, words, chars, meta["scheme"], meta["internal_scheme"], info)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, ConfigError) as e:
        raise ModelError(f"{path}: malformed nertool TorchScript file ({type(e).__name__}: {e})") from None


def _check_exported(path: str | Path, meta: dict, model: ExportedModel, module: torch.jit.ScriptModule) -> None:
    """ModelError unless the metadata fits the network it describes (a forged or damaged entry)."""
    from nertool.config import SCHEMES

    labels = meta.get("labels")
    n_tags = int(module.transitions.shape[0])
    if not isinstance(labels, list) or not all(isinstance(l, str) and l for l in labels) or len(labels) != n_tags:
        raise ModelError(f"{path}: metadata 'labels' does not fit the network ({n_tags} tags)")
    if meta.get("scheme") not in SCHEMES or meta.get("internal_scheme") not in SCHEMES:
        raise ModelError(f"{path}: metadata 'scheme'/'internal_scheme' is not a tag scheme")
    n_tuned = meta.get("n_tuned")
    if not isinstance(n_tuned, int) or isinstance(n_tuned, bool) or not 0 <= n_tuned <= len(module.word_index):
        raise ModelError(f"{path}: metadata 'n_tuned' does not fit the vocabulary")


def load(model: str | Path = "en", device: str = "cpu") -> ModelBundle:
    """A model directory, an exported TorchScript or ONNX file or a bundled model name, loaded."""
    path = resolve_model(model)
    if is_onnx(path):
        from nertool.store.onnx_model import load_onnx

        return load_onnx(path, device)
    if is_torchscript(path):
        return load_exported(path, device)
    return load_model(path)


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
