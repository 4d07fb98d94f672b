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


def _session(path: Path, device: str, whole: bool = False):
    """ONNX Runtime sessions over the file: ``(emissions, features)``. ``features`` (character ids
    -> one row per word) is None when the file has no character encoder or could not be cut there,
    or with ``whole`` (the file as it is, to read its metadata); then ``emissions`` takes the file's
    own inputs, else words, the token features and the mask."""
    ort = _runtime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.log_severity_level = 3  # errors only
    # its threads stop spinning when a run returns: spinning on, they take the cores from the
    # decoding that follows in torch (twice as slow beside them, BENCHMARKS.md 21.3)
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError(f"{path}: this ONNX Runtime has no CUDA provider (pip install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    try:
        parts = None if whole else _split(path)
        if parts is None:
            return ort.InferenceSession(str(path), opts, providers=providers), None
        return tuple(None if p is None else ort.InferenceSession(p.SerializeToString(), opts, providers=providers)
                     for p in parts)
    except Exception as e:  # onnxruntime's own error types (InvalidProtobuf, Fail...) share no base class
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"{path}: not a readable ONNX file ({first[:160]})") from None


def _split(path: Path):
    """The file's network as two models, ``(emissions, features)``, without the decoding nodes
    (ONNX Runtime runs every node whatever outputs are asked for; nertool decodes the emissions
    itself, with confidences and n-best): ``features`` maps character ids (words, chars) to each
    word's feature row, which nertool computes once per word type and keeps, as it does for its
    own networks; ``emissions`` takes words, those rows gathered per token (batch, seq_len,
    feature_dim) and the mask. ``(emissions, None)`` for a file without per-word features (its
    own inputs); None when onnx is not installed or the file could not be read or cut."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return None
    try:
        model = onnx.load(str(path))
        nodes = [n for n in model.graph.node if not n.name.startswith(VITERBI_PREFIX)]
        io = {v.name: v for v in list(model.graph.input) + list(model.graph.output)}
        gathers = [n for n in nodes if n.op_type == "Gather" and list(n.input)[1:] == ["char_index"]]
        if len(gathers) != 1:
            return _cut(model, nodes, list(model.graph.input), [io["emissions"]]), None
        table, tokens = gathers[0].input[0], gathers[0].output[0]
        rows = helper.make_tensor_value_info(table, TensorProto.FLOAT, ["words", "feature_dim"])
        per_token = helper.make_tensor_value_info(tokens, TensorProto.FLOAT, ["batch", "seq_len", "feature_dim"])
        return (_cut(model, nodes, [io["words"], per_token, io["mask"]], [io["emissions"]]),
                _cut(model, nodes, [io["chars"]], [rows]))
    except Exception:  # protobuf's DecodeError, a graph not cut as expected: ONNX Runtime reads it whole
        return None


def _cut(model, nodes: list, inputs: list, outputs: list):
    """A model of the ``nodes`` that compute ``outputs`` from ``inputs`` (value infos) and the
    model's initializers; ValueError when they do not suffice."""
    from onnx import AttributeProto, helper

    given, weights = {v.name for v in inputs}, {t.name for t in model.graph.initializer}
    needed, picked = {v.name for v in outputs}, []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in n.attribute):
                raise ValueError(f"{n.name} has a subgraph")
            picked.append(n)
            needed.update(i for i in n.input if i not in given)
    lacking = needed - {o for n in picked for o in n.output} - weights - given - {""}
    if lacking:
        raise ValueError(f"not computed: {sorted(lacking)[:3]}")
    inits = [t for t in model.graph.initializer if t.name in needed]
    graph = helper.make_graph(picked[::-1], "nertool", inputs, outputs, inits)
    out = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    out.metadata_props.extend(model.metadata_props)
    return out


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
    return _properties(p, _session(p, "cpu", whole=True)[0])[0]


class OnnxModel:
    """:class:`~nertool.store.loading.TaggingModel` over ONNX Runtime sessions: the file's
    character encoder gives each word's feature row (kept per word type by the Tagger), the rest
    of its network the emissions. A file that cannot be cut there runs whole; its "word features"
    are then the words' character ids (padded to ``max_word_chars``)."""

    def __init__(self, path: Path, sessions, meta: dict, crf: dict, device: str = "cpu"):
        self.path, self.device = path, torch.device(device)
        self._use(sessions)
        self.labels: list[str] = list(meta["labels"])
        self.config = ModelConfig.from_dict(meta["model"])
        self.training = False
        self._crf = tuple(torch.tensor(crf[k], dtype=torch.float32) for k in ("start", "end", "transitions"))

    def _use(self, sessions) -> None:
        self.session, self.features_session = sessions
        self._inputs = [i.name for i in self.session.get_inputs()]  # the emissions model's, in order

    def word_features(self, chars: torch.Tensor) -> torch.Tensor:
        # chars: (words, n) -> (words, feature_dim), or (words, max_word_chars) for a file run whole
        if self.features_session is not None:
            (rows,) = self.features_session.run(None, {"chars": chars.detach().cpu().numpy()})
            return torch.from_numpy(rows)
        return torch.nn.functional.pad(chars, (0, self.config.max_word_chars - chars.shape[1]))

    def emissions_from_features(self, words, features, char_index, mask):
        if self.features_session is not None:
            # shape: (batch, seq_len, feature_dim); gathered by numpy: a torch op this size wakes
            # torch's thread pool, whose threads then spin beside ONNX Runtime's and halve its speed
            tokens = features.cpu().numpy().take(char_index.cpu().numpy(), axis=0)
            feed = dict(zip(self._inputs, (words.cpu().numpy(), tokens, mask.cpu().numpy())))
            (em,) = self.session.run(["emissions"], feed)
            return torch.from_numpy(em).to(self.device)
        rows, inverse = torch.unique(char_index, return_inverse=True)
        chars = features[rows]
        width = max(1, int((chars != 0).sum(1).max()))
        return self.emissions(words, chars[:, :width], inverse.reshape(char_index.shape), mask)

    def emissions(self, words, chars, char_index, mask):
        if self.features_session is not None:
            return self.emissions_from_features(words, self.word_features(chars), char_index, mask)
        feed = {name: t.detach().cpu().numpy() for name, t in zip(INPUTS, (words, chars, char_index, mask))}
        (em,) = self.session.run(["emissions"], feed)
        return torch.from_numpy(em).to(self.device)  # shape: (batch, seq_len, num_tags)

    def transition_scores(self):
        return tuple(t.to(self.device) for t in self._crf)

    def to(self, device):
        if torch.device(device) != self.device:
            self._use(_session(self.path, str(device)))
            self.device = torch.device(device)
        return self

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self  # an export is inference only


def load_onnx(path: str | Path, device: str = "cpu") -> ModelBundle:
    """A :class:`ModelBundle` over an exported ONNX file."""
    p = Path(path)
    sessions = _session(p, device)
    meta, props = _properties(p, sessions[0])
    try:
        model = OnnxModel(p, sessions, meta, json.loads(props["nertool.crf"]), device)
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
