"""Export a model to one self-contained ONNX file: word and character ids (with a mask) in,
emissions, the constrained Viterbi's tags and path scores out, the vocabularies, normalisation
tables, labels and metadata in the file's metadata properties. Tags with ONNX Runtime (or any
runtime) without nertool or torch; nertool reads it back through :mod:`nertool.store.onnx_model`.
A sink: nothing in nertool depends on this module."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nertool.errors import ModelError
from nertool.fileio import atomic_write_bytes
from nertool.model.network import BiLstmCrf, CharCNN, Emitter, NoAttention, unpacked_birnn
from nertool.store.checkpoint import ModelBundle
from nertool.store.export import _metadata, _output_labels
from nertool.store.onnx_model import INPUTS, ONNX_FORMAT, ONNX_FORMAT_VERSION, VITERBI_PREFIX

OPSET = 18


class _BiLstmLayer(torch.autograd.Function):
    """One bidirectional LSTM layer over padded sentences, time-major: (seq_len, batch, input) and
    lengths (batch,) -> (seq_len, batch, 2 * hidden). Runs as :func:`unpacked_birnn`; exports as two
    of ONNX's own one-way LSTMs with ``sequence_lens`` (the reverse one reads each sentence backwards
    from its own end, zeros past it), side by side: ONNX Runtime runs the two faster than one
    bidirectional node (BENCHMARKS.md 22.1)."""

    @staticmethod
    def forward(ctx, x, lengths, wf, rf, bf, wb, rb, bb, hidden: int, *torch_weights):
        return unpacked_birnn(x.transpose(0, 1), lengths, list(torch_weights), True, 1, hidden, True).transpose(0, 1)

    @staticmethod
    def symbolic(g, x, lengths, wf, rf, bf, wb, rb, bb, hidden, *torch_weights):
        lens = g.op("Cast", lengths, to_i=6)  # int32
        axis = g.op("Constant", value_t=torch.tensor([1]))
        ys = []
        for w, r, b, direction in ((wf, rf, bf, "forward"), (wb, rb, bb, "reverse")):
            y, _, _ = g.op("LSTM", x, w, r, b, lens, hidden_size_i=hidden, direction_s=direction, outputs=3)
            ys.append(g.op("Squeeze", y, axis))  # shape: (seq_len, batch, hidden)
        return g.op("Concat", *ys, axis_i=2)


def _onnx_lstm_weights(rnn: nn.LSTM, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A torch LSTM layer's weights in ONNX's layout: W (2, 4h, input), R (2, 4h, h), B (2, 8h),
    forward then backward, gates reordered from torch's i f g o to ONNX's i o f c."""
    h = rnn.hidden_size
    order = torch.cat([torch.arange(0, h), torch.arange(3 * h, 4 * h), torch.arange(h, 2 * h), torch.arange(2 * h, 3 * h)])
    ws, rs, bs = [], [], []
    for suffix in ("", "_reverse"):
        p = lambda name: getattr(rnn, f"{name}_l{layer}{suffix}").detach()  # noqa: E731
        ws.append(p("weight_ih")[order])
        rs.append(p("weight_hh")[order])
        bs.append(torch.cat([p("bias_ih")[order], p("bias_hh")[order]]))
    return torch.stack(ws), torch.stack(rs), torch.stack(bs)


def _char_tables(cnn: CharCNN) -> torch.Tensor:
    """The character CNN's embeddings multiplied by each kernel position's filters: (kernel,
    n_chars + 1, filters), ``tables[j, ch] = embed(ch) @ weight[:, :, j].T``; the last row is zeros
    (the convolution's own zero padding around a word)."""
    w = cnn.conv.weight.detach()  # shape: (filters, dim, kernel)
    emb = cnn.embed.weight.detach()  # shape: (n_chars, dim)
    tables = torch.einsum("cd,fdk->kcf", emb, w)
    return torch.cat([tables, tables.new_zeros(tables.shape[0], 1, tables.shape[2])], dim=1)


def _char_cnn(cnn: CharCNN, chars: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """:class:`CharCNN` as ONNX Runtime runs it fastest: the convolution as a sum of ``kernel``
    row lookups in :func:`_char_tables` (one per window position, no multiplication left at run
    time), padding characters pushed down by an added -1e4, the maximum over the characters.
    chars: (words, max_chars) -> (words, filters), the same values as the module's (up to rounding)."""
    c, k = chars.shape[1], tables.shape[0]
    ids = F.pad(chars, (k // 2, k // 2), value=tables.shape[1] - 1)  # the zero row around each word
    y = cnn.conv.bias + F.embedding(ids[:, 0:c], tables[0])  # shape: (words, max_chars, filters)
    for j in range(1, k):
        y = y + F.embedding(ids[:, j : j + c], tables[j])
    y = y + (chars == 0).unsqueeze(2).to(y.dtype) * -1e4
    out = y.max(1).values  # shape: (words, filters)
    return out * (chars[:, :1] != 0).to(out.dtype)  # the empty (padding) word: zeros


class _Emissions(nn.Module):
    """(words, chars, char_index, mask) -> emissions (batch, seq_len, num_tags), with sentence
    lengths in place of packed sequences (an LSTM as ONNX's own, time-major, with ``sequence_lens``;
    a GRU as :func:`unpacked_birnn`)."""

    def __init__(self, emitter: Emitter):
        super().__init__()
        self.e = emitter
        self.native = emitter.is_lstm and emitter.rnn.bias
        self.cnn = isinstance(emitter.chars, CharCNN)
        if self.cnn:
            self.register_buffer("char_tables", _char_tables(emitter.chars))
        if self.native:
            for layer in range(emitter.rnn.num_layers):
                w, r, b = _onnx_lstm_weights(emitter.rnn, layer)
                for d, side in enumerate("fb"):  # forward, backward: shapes (1, 4h, input), (1, 4h, h), (1, 8h)
                    self.register_buffer(f"w{layer}{side}", w[d : d + 1])
                    self.register_buffer(f"r{layer}{side}", r[d : d + 1])
                    self.register_buffer(f"b{layer}{side}", b[d : d + 1])

    def word_features(self, chars: torch.Tensor) -> torch.Tensor:
        """:meth:`Emitter.word_features`, the character CNN as :func:`_char_cnn`."""
        e = self.e
        if not self.cnn:
            return e.word_features(chars)
        return torch.cat([_char_cnn(e.chars, chars, self.char_tables), e.case(chars)], dim=1)

    def forward(self, words: torch.Tensor, chars: torch.Tensor, char_index: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        e = self.e
        lengths = mask.long().sum(1)  # shape: (batch,)
        rnn = e.rnn
        if self.native:  # time-major: only the ids, the character rows and the emissions are transposed
            x = torch.cat([e.embed_words(words.t()), F.embedding(char_index, self.word_features(chars)).transpose(0, 1)],
                          dim=2)  # shape: (seq_len, batch, input_dim)
            out = x
            for layer in range(rnn.num_layers):
                per_layer = rnn._flat_weights[8 * layer : 8 * layer + 8]
                own = [getattr(self, f"{kind}{layer}{side}") for side in "fb" for kind in "wrb"]
                out = _BiLstmLayer.apply(out, lengths, *own, rnn.hidden_size, *per_layer)
            out = out * mask.t().unsqueeze(2).to(out.dtype)  # shape: (seq_len, batch, 2 * hidden)
            return e.emit(out).transpose(0, 1)  # shape: (batch, seq_len, num_tags)
        x = torch.cat([e.embed_words(words), F.embedding(char_index, self.word_features(chars))], dim=2)
        out = unpacked_birnn(x, lengths, rnn._flat_weights, e.is_lstm, rnn.num_layers, rnn.hidden_size, rnn.bias)
        out = out * mask.unsqueeze(2).to(out.dtype)  # shape: (batch, seq_len, 2 * hidden)
        return e.emit(out)  # shape: (batch, seq_len, num_tags)


def check_exportable(bundle: ModelBundle) -> Emitter:
    """The bundle's emitter, or a ModelError naming the feature ONNX export does not cover."""
    m = bundle.model
    if not isinstance(m, BiLstmCrf):
        raise ModelError("this model is an exported file already; export a model directory")
    e = m.emitter
    if not isinstance(e, Emitter):
        raise ModelError("ONNX export does not cover ensembles (a model with members); export a single network, "
                         "or write a TorchScript file (.pt)")
    if m.config.char_encoder == "lstm":
        raise ModelError("ONNX export does not cover the character LSTM (char_encoder = \"lstm\"); "
                         "write a TorchScript file (.pt)")
    if not isinstance(e.attention, NoAttention):
        raise ModelError("ONNX export does not cover self-attention (attention = true); write a TorchScript file (.pt)")
    return e


def _emissions_graph(emitter: Emitter, half_table: bool = True):
    """The emissions network as an ONNX ModelProto (the TorchScript-based exporter: dynamic batch,
    length and word counts; the dynamo exporter fixed the length in the output's declared shape)."""
    import onnx

    e = copy.deepcopy(emitter).eval()
    if e.has_pretrained:  # float16 rows (GloVe's values are float16 already in a model directory)
        e.pretrained = e.pretrained.half() if half_table else e.pretrained.float()
    words = torch.tensor([[2, 3, 4], [5, 6, 0]])
    chars = torch.tensor([[0, 0], [1, 2], [2, 0], [3, 3], [1, 0], [2, 2]])
    char_index = torch.tensor([[1, 2, 3], [4, 5, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    buf = io.BytesIO()
    axes = {"words": [0, 1], "chars": [0, 1], "char_index": [0, 1], "mask": [0, 1], "emissions": [0, 1]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(_Emissions(e), (words, chars, char_index, mask), buf, dynamo=False, opset_version=OPSET,
                          input_names=list(INPUTS), output_names=["emissions"], dynamic_axes=axes)
    return onnx.load_from_string(buf.getvalue())


def _constants(start: torch.Tensor, end: torch.Tensor, transitions: torch.Tensor) -> list:
    """The CRF's scores and the small constants the Viterbi nodes use, as initializers."""
    from onnx import TensorProto, helper, numpy_helper

    f32 = lambda name, t: numpy_helper.from_array(t.detach().float().cpu().numpy(), name)  # noqa: E731
    i64 = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    scalar = lambda name, kind, v: helper.make_tensor(name, kind, [], [v])  # noqa: E731
    return [
        f32("crf_start", start), f32("crf_end", end), f32("crf_trans_t", transitions.t()),  # (next, prev)
        i64("ax0", [0]), i64("ax1", [1]), i64("ax2", [2]), i64("one_1d", [1]), i64("big_1d", [2**62]),
        i64("zero_1d_lo", [0]), i64("minus_one_1d", [-1]), i64("pad_em", [0, 0, 0, 0, 1, 0]), i64("pad_mask", [0, 0, 0, 1]),
        scalar("zero", TensorProto.INT64, 0), scalar("one", TensorProto.INT64, 1),
        scalar("thirty_two", TensorProto.INT64, 32), scalar("floor", TensorProto.FLOAT, -1e30),
        scalar("zero_f", TensorProto.FLOAT, 0.0),
    ]


def _forward_body():
    """One step of the max-product pass: states score (batch, tags) and offset (batch,) float64;
    inputs e_t (batch, tags), keep_t (batch, 1) (the sentence goes on here) and shift_t () (a
    32nd step); out the new states and the scores it started from (batch, tags), from which the
    backtrack recomputes the one arg-maximum it follows (as :func:`nertool.model.decoding.viterbi`
    does). The sums are laid out (batch, next, previous), so that the reduction runs over the
    innermost axis. At every 32nd step (an ``If``, so the other steps run none of it) the scores'
    maximum is taken out."""
    from onnx import TensorProto, helper

    n, v = helper.make_node, helper.make_tensor_value_info
    shift = helper.make_graph(
        [
            n("ReduceMax", ["best1", "ax1"], ["row_max"], keepdims=1),
            n("Max", ["row_max", "floor"], ["row_max_c"]),  # shape: (batch, 1)
            n("Sub", ["best1", "row_max_c"], ["best_s"]),
            n("Where", ["keep_t", "row_max_c", "zero_f"], ["taken"]),
            n("Squeeze", ["taken", "ax1"], ["taken_b"]),
            n("Cast", ["taken_b"], ["taken_d"], to=TensorProto.DOUBLE),
            n("Add", ["offset_in", "taken_d"], ["offset_s"]),
        ],
        "shift", [], [v("best_s", TensorProto.FLOAT, None), v("offset_s", TensorProto.DOUBLE, None)],
    )
    keep = helper.make_graph(
        [n("Identity", ["best1"], ["best_k"]), n("Identity", ["offset_in"], ["offset_k"])],
        "keep", [], [v("best_k", TensorProto.FLOAT, None), v("offset_k", TensorProto.DOUBLE, None)],
    )
    return helper.make_graph(
        [
            n("Unsqueeze", ["score_in", "ax1"], ["s3"]),  # shape: (batch, 1, prev)
            n("Add", ["s3", "crf_trans_t"], ["nxt"]),  # shape: (batch, next, prev), broadcast
            n("ReduceMax", ["nxt", "ax2"], ["best0"], keepdims=0),
            n("Identity", ["score_in"], ["h_out"]),
            n("Add", ["best0", "e_t"], ["best1"]),
            n("If", ["shift_t"], ["best", "offset_out"], then_branch=shift, else_branch=keep),
            n("Where", ["keep_t", "best", "score_in"], ["score_out"]),
        ],
        "viterbi_forward",
        [v("score_in", TensorProto.FLOAT, None), v("offset_in", TensorProto.DOUBLE, None),
         v("e_t", TensorProto.FLOAT, None), v("keep_t", TensorProto.BOOL, None), v("shift_t", TensorProto.BOOL, None)],
        [v("score_out", TensorProto.FLOAT, None), v("offset_out", TensorProto.DOUBLE, None),
         v("h_out", TensorProto.FLOAT, None)],
    )


def _backtrack_body():
    """One step back: state cur (batch,), the tag at tb + 1; inputs the scores at position tb
    (batch, tags) and tb. The tag at tb is the arg-maximum of those scores plus the transitions
    into cur: the forward step's own sums (first index on ties, as the forward maximum's)."""
    from onnx import TensorProto, helper

    n, v = helper.make_node, helper.make_tensor_value_info
    return helper.make_graph(
        [
            n("Gather", ["crf_trans_t", "cur_in"], ["into"], axis=0),  # shape: (batch, prev)
            n("Add", ["h_t", "into"], ["cand"]),
            n("ArgMax", ["cand"], ["prev"], axis=1, keepdims=0),
            n("Add", ["tb", "one"], ["t1"]),
            n("Greater", ["lengths", "t1"], ["inside"]),
            n("Where", ["inside", "prev", "cur_in"], ["cur_out"]),
            n("Identity", ["cur_out"], ["tag_t"]),
        ],
        "viterbi_backtrack",
        [v("cur_in", TensorProto.INT64, None), v("h_t", TensorProto.FLOAT, None), v("tb", TensorProto.INT64, None)],
        [v("cur_out", TensorProto.INT64, None), v("tag_t", TensorProto.INT64, None)],
    )


def _viterbi_nodes() -> list:
    """Nodes that take ``emissions`` and ``mask`` to ``tags`` (batch, seq_len) int64 and ``score``
    (batch,) float64: the steps of :func:`nertool.model.decoding.viterbi` as two Scan loops."""
    from onnx import TensorProto, helper

    n = helper.make_node
    return [
        n("Cast", ["emissions"], ["em_raw"], to=TensorProto.FLOAT),
        n("Cast", ["mask"], ["mask_i"], to=TensorProto.INT64),
        n("ReduceSum", ["mask_i", "ax1"], ["lengths"], keepdims=0),  # shape: (batch,)
        # one masked step more, so that the loops run at least once (a Scan over nothing fails)
        n("Pad", ["em_raw", "pad_em"], ["em"]),  # shape: (batch, seq_len + 1, tags)
        n("Pad", ["mask_i", "pad_mask"], ["mask_ip"]),
        n("Cast", ["mask_ip"], ["mask_p"], to=TensorProto.BOOL),
        n("Transpose", ["em"], ["em_t"], perm=[1, 0, 2]),  # shape: (seq_len + 1, batch, tags)
        n("Transpose", ["mask_p"], ["mask_t"], perm=[1, 0]),
        n("Gather", ["em_t", "zero"], ["em0"], axis=0),
        n("Add", ["em0", "crf_start"], ["score0"]),
        n("Slice", ["em_t", "one_1d", "big_1d", "ax0"], ["em_rest"]),
        n("Slice", ["mask_t", "one_1d", "big_1d", "ax0"], ["mask_rest"]),
        n("Shape", ["em_t"], ["seq_1d"], start=0, end=1),
        n("Squeeze", ["seq_1d", "ax0"], ["seq_len"]),
        n("Range", ["one", "seq_len", "one"], ["positions"]),  # 1 .. seq_len
        n("Range", ["zero", "seq_len", "one"], ["all_positions"]),
        n("Slice", ["all_positions", "zero_1d_lo", "minus_one_1d", "ax0"], ["back_positions"]),
        n("Shape", ["em0"], ["batch_1d"], start=0, end=1),
        n("ConstantOfShape", ["batch_1d"], ["offset0"], value=helper.make_tensor("v", TensorProto.DOUBLE, [1], [0.0])),
        n("Unsqueeze", ["mask_rest", "ax2"], ["keep_rest"]),  # shape: (seq_len, batch, 1)
        n("Mod", ["positions", "thirty_two"], ["positions_mod"]),
        n("Equal", ["positions_mod", "zero"], ["shift_rest"]),  # shape: (seq_len,): every 32nd step
        n("Scan", ["score0", "offset0", "em_rest", "keep_rest", "shift_rest"], ["score_last", "offset", "history"],
          num_scan_inputs=3, body=_forward_body()),
        n("Add", ["score_last", "crf_end"], ["final"]),
        n("ReduceMax", ["final", "ax1"], ["best_f"], keepdims=0),
        n("ArgMax", ["final"], ["last"], axis=1, keepdims=0),
        n("Cast", ["best_f"], ["best_d"], to=TensorProto.DOUBLE),
        n("Add", ["best_d", "offset"], ["score"]),
        n("Scan", ["last", "history", "back_positions"], ["first", "head"], num_scan_inputs=2, body=_backtrack_body(),
          scan_input_directions=[1, 1], scan_output_directions=[1]),
        n("Transpose", ["head"], ["head_b"], perm=[1, 0]),  # shape: (batch, seq_len)
        n("Unsqueeze", ["last", "ax1"], ["last2"]),
        n("Concat", ["head_b", "last2"], ["tags_p"], axis=1),  # shape: (batch, seq_len + 1)
        n("Slice", ["tags_p", "zero_1d_lo", "minus_one_1d", "ax1"], ["tags"]),  # shape: (batch, seq_len)
    ]


def export_onnx(bundle: ModelBundle, out: str | Path, quantize: str | None = None) -> Path:
    """Write ``bundle`` (an eager single-network model) as one ONNX file at ``out``; with
    ``quantize="int8"``, its weights (LSTM and linear layers) dynamically quantised to int8 by ONNX
    Runtime's quantiser."""
    import onnx
    from onnx import TensorProto, helper

    if quantize not in (None, "int8"):
        raise ModelError(f"--quantize {quantize}: only int8 is available")
    emitter = check_exportable(bundle)
    model = _emissions_graph(emitter, half_table=quantize is None)  # int8 quantises the float32 table itself
    start, end, trans = (t.detach() for t in bundle.model.transition_scores())
    g = model.graph
    viterbi_nodes = _viterbi_nodes()
    for i, node in enumerate(viterbi_nodes):  # named, so that a reader wanting emissions alone can drop them
        node.name = f"{VITERBI_PREFIX}{i}"
    g.node.extend(viterbi_nodes)
    g.initializer.extend(_constants(start, end, trans))
    g.output.extend([helper.make_tensor_value_info("tags", TensorProto.INT64, ["batch", "seq_len"]),
                     helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["batch"])])
    char_table, lower_table = bundle.words.char_tables()
    props = {
        "nertool": json.dumps({**_metadata(bundle), "format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION}),
        "nertool.output_labels": json.dumps(_output_labels(bundle)),
        "nertool.words": json.dumps(dict(bundle.words.index()), ensure_ascii=False),
        "nertool.chars": json.dumps(dict(bundle.chars.index), ensure_ascii=False),
        "nertool.char_table": json.dumps(char_table, ensure_ascii=False),
        "nertool.lower_table": json.dumps(lower_table, ensure_ascii=False),
        "nertool.crf": json.dumps({"start": start.tolist(), "end": end.tolist(), "transitions": trans.tolist()}),
    }
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "nertool"
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if quantize == "int8":
        data = _quantize_int8(data)
    out = Path(out)
    atomic_write_bytes(out, data)
    return out


def _quantize_int8(data: bytes) -> bytes:
    """Dynamic int8 quantisation of the LSTM and MatMul/Gemm weights and of the embedding tables
    (Gather), by ONNX Runtime's quantiser."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "float.onnx", Path(d) / "int8.onnx"
        src.write_bytes(data)
        with warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM", "MatMul", "Gemm", "Gather"])
        return dst.read_bytes()


@contextlib.contextmanager
def _quiet_root_logger():
    """The quantiser's advice, logged on the root logger, left out of the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
