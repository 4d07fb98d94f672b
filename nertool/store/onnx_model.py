"""An exported ONNX file (see :mod:`nertool.store.onnx_export`) as a
:class:`~nertool.store.loading.TaggingModel`: the network runs in ONNX Runtime, nertool's decoder
(n-best, confidences, document context) works on the emissions the file returns."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from nertool.config import ModelConfig
from nertool.errors import ConfigError, ModelError
from nertool.model.vocab import CharVocab, Normalization, WordVocab
from nertool.store.checkpoint import STRUCTURAL, ModelBundle, check_export_metadata

ONNX_FORMAT = "nertool-onnx"
ONNX_FORMAT_VERSION = 1
INPUTS = ("words", "chars", "char_index", "mask")
VITERBI_PREFIX = "nertool_viterbi/"  # the names of the graph's decoding nodes


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("ONNX files run with ONNX Runtime: pip install 'nertool[onnx]'") from None
    return onnxruntime


def _session(path: Path, device: str):
    ort = _runtime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.log_severity_level = 3  # errors only
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError(f"{path}: this ONNX Runtime has no CUDA provider (pip install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(_emissions_only(path), opts, providers=providers)
    except Exception as e:  # onnxruntime's own error types (InvalidProtobuf, Fail...) share no base class
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"{path}: not a readable ONNX file ({first[:160]})") from None


def _emissions_only(path: Path) -> bytes | str:
    """The file's model without its decoding nodes (ONNX Runtime runs every node whatever outputs
    are asked for; nertool decodes the emissions itself, with confidences and n-best)."""
    try:
        import onnx
    except ImportError:
        return str(path)
    try:
        model = onnx.load(str(path))
    except Exception:  # protobuf's DecodeError and friends: ONNX Runtime says what is wrong
        return str(path)
    keep = [n for n in model.graph.node if not n.name.startswith(VITERBI_PREFIX)]
    if len(keep) == len(model.graph.node):
        return str(path)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    outputs = [o for o in model.graph.output if o.name == "emissions"]
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    used = {i for n in keep for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return model.SerializeToString()


def _properties(path: Path, session) -> tuple[dict, dict[str, str]]:
    """The file's nertool metadata, checked, and all its metadata properties (JSON strings)."""
    props = dict(session.get_modelmeta().custom_metadata_map)
    try:
        meta = json.loads(props["nertool"])
    except (KeyError, ValueError):
        raise ModelError(f"{path}: an ONNX file, but not one nertool wrote (no nertool metadata)") from None
    return check_export_metadata(path, meta, ONNX_FORMAT, ONNX_FORMAT_VERSION, "ONNX"), props


def read_onnx_metadata(path: str | Path) -> dict:
    """The nertool metadata of an exported ONNX file."""
    p = Path(path)
    return _properties(p, _session(p, "cpu"))[0]


class OnnxModel:
    """:class:`~nertool.store.loading.TaggingModel` over an ONNX Runtime session. Its "word
    features" are the words' character ids (padded to ``max_word_chars``): the character encoder
    runs inside the file with the rest of the network."""

    def __init__(self, path: Path, session, meta: dict, crf: dict, device: str = "cpu"):
        self.path, self.session, self.device = path, session, torch.device(device)
        self.labels: list[str] = list(meta["labels"])
        self.config = ModelConfig.from_dict(meta["model"])
        self.training = False
        self._crf = tuple(torch.tensor(crf[k], dtype=torch.float32) for k in ("start", "end", "transitions"))

    def word_features(self, chars: torch.Tensor) -> torch.Tensor:
        # chars: (words, n) -> (words, max_word_chars)
        return torch.nn.functional.pad(chars, (0, self.config.max_word_chars - chars.shape[1]))

    def emissions_from_features(self, words, features, char_index, mask):
        rows, inverse = torch.unique(char_index, return_inverse=True)
        chars = features[rows]
        width = max(1, int((chars != 0).sum(1).max()))
        return self.emissions(words, chars[:, :width], inverse.reshape(char_index.shape), mask)

    def emissions(self, words, chars, char_index, mask):
        feed = {name: t.detach().cpu().numpy() for name, t in zip(INPUTS, (words, chars, char_index, mask))}
        (em,) = self.session.run(["emissions"], feed)
        return torch.from_numpy(em).to(self.device)  # shape: (batch, seq_len, num_tags)

    def transition_scores(self):
        return tuple(t.to(self.device) for t in self._crf)

    def to(self, device):
        if torch.device(device) != self.device:
            self.session = _session(self.path, str(device))
            self.device = torch.device(device)
        return self

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self  # an export is inference only


def load_onnx(path: str | Path, device: str = "cpu") -> ModelBundle:
    """A :class:`ModelBundle` over an exported ONNX file."""
    p = Path(path)
    session = _session(p, device)
    meta, props = _properties(p, session)
    try:
        model = OnnxModel(p, session, meta, json.loads(props["nertool.crf"]), device)
        n_tags = len(model._crf[0])
        if len(model.labels) != n_tags or model._crf[2].shape != (n_tags, n_tags):
            raise ModelError(f"{p}: metadata 'labels' does not fit the network ({n_tags} tags)")
        index = json.loads(props["nertool.words"])
        words = WordVocab(index, meta["n_tuned"], Normalization.from_config(model.config))
        chars = CharVocab([c for c, _ in sorted(json.loads(props["nertool.chars"]).items(), key=lambda kv: kv[1])])
        info = {k: v for k, v in meta.items() if k not in STRUCTURAL}
        return ModelBundle(model, words, chars, meta["scheme"], meta["internal_scheme"], info)
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as e:
        raise ModelError(f"{p}: malformed nertool ONNX file ({type(e).__name__}: {e})") from None
