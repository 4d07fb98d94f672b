"""ONNX export: one file with the network and the constrained Viterbi, read by ONNX Runtime with or
without nertool; tags equal to the eager model's."""
from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import SHARED, run_cli

ort = pytest.importorskip("onnxruntime")

from nertool.data.conll import read_conll  # noqa: E402
from nertool.errors import ModelError  # noqa: E402
from nertool.model.decoding import viterbi  # noqa: E402
from nertool.model.encoding import Encoder  # noqa: E402
from nertool.model.network import BiLstmCrf  # noqa: E402
from nertool.store.loading import load  # noqa: E402
from nertool.store.onnx_export import export_onnx  # noqa: E402
from nertool.store.onnx_model import load_onnx  # noqa: E402
from nertool.tag.tagger import Tagger  # noqa: E402


@pytest.fixture(scope="module")
def onnx_file(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tagger.onnx"
    r = run_cli("export", tiny_model, out)
    assert r.returncode == 0, r.stderr
    return out


def _random_batches(bundle, seed: int, shapes):
    """(sentences, Batch) for each (batch size, longest length): words from the vocabulary and
    unknown words, lengths from 1 to the longest."""
    rng = random.Random(seed)
    enc = Encoder(bundle.words, bundle.chars, bundle.model.config.max_word_chars)
    vocab = list(dict(bundle.words.index()))[2:] + ["Zyxw", "éclair", "東京", "3.5"]
    for b, longest in shapes:
        sents = [[rng.choice(vocab) for _ in range(rng.randint(1, longest))] for _ in range(b)]
        sents[0] = sents[0][:longest] + [rng.choice(vocab) for _ in range(longest - len(sents[0]))]
        yield sents, enc.collate(enc.encode(sents), list(range(b)))


def _run(session, batch):
    feed = {"words": batch.words.numpy(), "chars": batch.chars.numpy(), "char_index": batch.char_index.numpy(),
            "mask": batch.mask.numpy()}
    return session.run(["emissions", "tags", "score"], feed)


SHAPES = [(1, 1), (1, 2), (3, 1), (256, 5), (7, 31), (5, 32), (4, 33), (2, 65), (1, 512), (9, 512)]


def test_tags_equal_the_eager_model_at_lengths_1_to_512_and_batches_1_to_256(tiny_model, onnx_file):
    bundle = load(tiny_model)
    session = ort.InferenceSession(str(onnx_file))
    start, end, trans = bundle.model.transition_scores()
    for _, batch in _random_batches(bundle, 0, SHAPES):
        em, tags, score = _run(session, batch)
        m = batch.mask.numpy()
        with torch.inference_mode():
            eager = bundle.model.emitter(batch.words, batch.chars, batch.char_index, batch.mask)
            eager_tags, _ = viterbi(eager, batch.mask, start, end, trans)
            # the file's Viterbi against nertool's on the same emissions: the same path and score
            same_tags, same_score = viterbi(torch.from_numpy(em), batch.mask, start, end, trans)
        assert np.abs(em - eager.numpy())[m].max() < 1e-4
        assert (tags[m] == same_tags.numpy()[m]).all()
        np.testing.assert_allclose(score, same_score.numpy(), rtol=1e-9, atol=1e-6)
        assert (tags[m] == eager_tags.numpy()[m]).all()


@pytest.mark.parametrize("change", [dict(num_layers=2, case_features=False), dict(rnn="gru", char_encoder="none"),
                                    dict(cased_words=True, hidden_size=8), dict(char_kernel=4), dict(char_kernel=5)])
def test_other_network_shapes_export_to_the_same_emissions(tiny_model, tmp_path, change):
    bundle = load(tiny_model)
    cfg = dataclasses.replace(bundle.model.config, **change)
    torch.manual_seed(0)
    net = BiLstmCrf(cfg, len(bundle.words), bundle.words.n_tuned, len(bundle.chars), bundle.labels,
                    bundle.internal_scheme).eval()
    other = dataclasses.replace(bundle, model=net)
    path = export_onnx(other, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path))
    split = load_onnx(path).model  # nertool's reader: the character encoder cut off and run once per word type
    assert (split.features_session is None) == (net.emitter.feature_dim == 0)
    for _, batch in _random_batches(other, 1, [(3, 7), (2, 40)]):
        em, _, _ = _run(session, batch)
        with torch.inference_mode():
            eager = net.emitter(batch.words, batch.chars, batch.char_index, batch.mask)
        assert np.abs(em - eager.numpy())[batch.mask.numpy()].max() < 1e-4
        ours = split.emissions(batch.words, batch.chars, batch.char_index, batch.mask)
        assert (ours - eager).abs()[batch.mask].max() < 1e-4


def test_the_tagger_the_cli_and_evaluate_read_the_file(tiny_model, tiny_corpus, onnx_file, tmp_path):
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    eager = Tagger.load(str(tiny_model)).tag_sentences(sents, nbest=2)
    via = Tagger.load(str(onnx_file)).tag_sentences(sents, nbest=2)
    assert [r.tags for r in via] == [r.tags for r in eager]
    for a, b in zip(via, eager):  # confidences and n-best come from nertool's decoder on the file's emissions
        assert [round(p, 4) for _, p in a.nbest] == [round(p, 4) for _, p in b.nbest]
    # batches padded as the service pads them (rows of one padding token): the same
    onnx_tagger = Tagger.load(str(onnx_file))
    assert onnx_tagger.tag_sentences(sents, nbest=2, row_multiple=8) == via
    r1 = run_cli("evaluate", onnx_file, tiny_corpus["test"], "--json")
    r2 = run_cli("evaluate", tiny_model, tiny_corpus["test"], "--json")
    assert r1.returncode == 0, r1.stderr
    assert json.loads(r1.stdout)["f1"] == json.loads(r2.stdout)["f1"]
    text = tmp_path / "t.txt"
    text.write_text("Anna Berg visited Oslo .\n", encoding="utf-8")
    r = run_cli("tag", onnx_file, text)
    assert r.returncode == 0 and json.loads(r.stdout)["tags"] == Tagger.load(str(tiny_model))("Anna Berg visited Oslo .").tags


def test_tagging_with_onnxruntime_and_numpy_alone(tiny_model, onnx_file):
    """The README's recipe: nothing but onnxruntime and numpy (nertool and torch made unimportable)."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["nertool"] = None
        sys.modules["torch"] = None
        import json
        import numpy as np
        import onnxruntime as ort

        sess = ort.InferenceSession({str(onnx_file)!r})
        meta = sess.get_modelmeta().custom_metadata_map
        words, chars = json.loads(meta["nertool.words"]), json.loads(meta["nertool.chars"])
        char_table, lower_table = json.loads(meta["nertool.char_table"]), json.loads(meta["nertool.lower_table"])
        labels = json.loads(meta["nertool.output_labels"])
        config = json.loads(meta["nertool"])["model"]

        def word_id(w):
            form = "".join(char_table.get(c, c) for c in w)
            i = words.get(form, 1)
            if i == 1 and config["cased_words"]:
                i = words.get("".join(lower_table.get(c, c) for c in form), 1)
            return i

        def tag(sentences):
            longest = max(map(len, sentences))
            distinct = sorted({{w for s in sentences for w in s}})
            row = {{w: r + 1 for r, w in enumerate(distinct)}}
            width = max(len(w[:config["max_word_chars"]]) for w in distinct)
            c = np.zeros((len(distinct) + 1, width), dtype=np.int64)
            for w, r in row.items():
                for k, ch in enumerate(w[:config["max_word_chars"]]):
                    c[r, k] = chars.get(ch, 1)
            ids = np.zeros((len(sentences), longest), dtype=np.int64)
            idx = np.zeros_like(ids)
            mask = np.zeros(ids.shape, dtype=bool)
            for i, s in enumerate(sentences):
                ids[i, :len(s)] = [word_id(w) for w in s]
                idx[i, :len(s)] = [row[w] for w in s]
                mask[i, :len(s)] = True
            (tags,) = sess.run(["tags"], {{"words": ids, "chars": c, "char_index": idx, "mask": mask}})
            return [[labels[k] for k in t[:len(s)]] for t, s in zip(tags, sentences)]

        print(json.dumps(tag([["Anna", "Berg", "visited", "Oslo", "."], ["Hiro", "met", "Chen", "in", "Lima"]])))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    eager = Tagger.load(str(tiny_model)).tag_sentences([["Anna", "Berg", "visited", "Oslo", "."],
                                                        ["Hiro", "met", "Chen", "in", "Lima"]])
    assert json.loads(r.stdout) == [e.tags for e in eager]


def test_int8_file_is_smaller_and_tags_nearly_alike(tiny_model, tiny_corpus, tmp_path):
    out = tmp_path / "q.onnx"
    r = run_cli("export", tiny_model, out, "--quantize", "int8")
    assert r.returncode == 0, r.stderr
    ops = {n.op_type for n in __import__("onnx").load(str(out)).graph.node}
    assert "DynamicQuantizeLSTM" in ops or "MatMulInteger" in ops
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    eager = [r.tags for r in Tagger.load(str(tiny_model)).tag_sentences(sents)]
    q = [r.tags for r in Tagger.load(str(out)).tag_sentences(sents)]
    agree = sum(a == b for x, y in zip(q, eager) for a, b in zip(x, y)) / sum(map(len, eager))
    assert agree > 0.95


def test_bad_files_and_features_the_exporter_cannot_express_are_one_line(tiny_model, tmp_path, onnx_file):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(onnx_file.read_bytes()[:5000])
    foreign = tmp_path / "foreign.onnx"
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), str(foreign))
    text = tmp_path / "t.txt"
    text.write_text("Anna visited Oslo .\n", encoding="utf-8")
    for bad, says in [(broken, "not a readable ONNX file"), (foreign, "not one nertool wrote")]:
        r = run_cli("tag", bad, text)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_cli("export", tiny_model, tmp_path / "x.onnx", "--quantize", "int4")
    assert r.returncode == 2 and "only int8" in r.stderr
    r = run_cli("export", tiny_model, tmp_path / "x.pt", "--quantize", "int8")
    assert r.returncode == 2 and "ONNX files" in r.stderr
    bundle = load(tiny_model)
    lstm_chars = dataclasses.replace(bundle.model.config, char_encoder="lstm")
    net = BiLstmCrf(lstm_chars, len(bundle.words), bundle.words.n_tuned, len(bundle.chars), bundle.labels,
                    bundle.internal_scheme)
    with pytest.raises(ModelError, match="character LSTM"):
        export_onnx(dataclasses.replace(bundle, model=net), tmp_path / "y.onnx")
    assert not (tmp_path / "y.onnx").exists()


@pytest.mark.skipif(not (SHARED / "conll2003").is_dir(), reason="needs ../shared/corpora")
def test_en_fast_onnx_equals_eager_on_conll2003_test(tmp_path):
    path = export_onnx(load("en-fast"), tmp_path / "en-fast.onnx")
    sents = [t for t, _ in read_conll(SHARED / "conll2003" / "test.txt")]
    eager = [r.tags for r in Tagger.load("en-fast").tag_sentences(sents, scores=False)]
    via = [r.tags for r in Tagger.load(str(path)).tag_sentences(sents, scores=False)]
    assert via == eager
