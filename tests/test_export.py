import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import SHARED
from typer.testing import CliRunner

from nertool.cli.app import app
from nertool.data.conll import read_conll
from nertool.store.export import export
from nertool.store.loading import bundled_models, flatten_rnn_weights, load
from nertool.tag.tagger import Tagger

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tagger.pt"
    r = runner.invoke(app, ["export", str(tiny_model), str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_exported_equals_eager_on_tiny_test(tiny_model, tiny_corpus, exported):
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    eager = [r.tags for r in Tagger.load(str(tiny_model)).tag_sentences(sents, scores=False)]
    m = torch.jit.load(str(exported))
    assert m.tag(sents) == eager
    # the Tagger (and so `nertool tag`) accepts the exported file too, scores included
    via_file = Tagger.load(str(exported)).tag_sentences(sents)
    assert [r.tags for r in via_file] == eager


def test_exported_normalises_like_the_model(tiny_model, exported):
    from nertool.store.checkpoint import load_model

    words = load_model(tiny_model).words
    m = torch.jit.load(str(exported))
    for w in ["Paris", "PARIS", "1990", "İstanbul", "ΣΟΦΊΑ", "٣٤", "東京", "Ǆemal", "x😀Y"]:
        assert m.normalize(w) == words.normalize(w)


def test_plain_torch_jit_load_without_nertool(exported, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["nertool"] = None  # any import of nertool now fails
        import torch
        try:
            import nertool  # noqa: F401
            raise SystemExit("nertool importable")
        except ImportError:
            pass
        m = torch.jit.load({str(exported)!r}, map_location="cpu")
        print(m.tag([["Anna", "Berg", "visited", "Oslo", "."]]))
        words, chars, idx, mask = m.encode([["Tom", "visited", "Paris"]])
        tags, scores = m(words, chars, idx, mask)
        print(tags.shape[1], float(scores[0]) == float(scores[0]))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    tags = eval(first)  # a printed list of lists of strings
    assert len(tags[0]) == 5 and all(isinstance(t, str) for t in tags[0])
    assert second == "3 True"


def test_exported_metadata_and_info(exported):
    r = runner.invoke(app, ["info", str(exported), "--json"])
    assert r.exit_code == 0, r.output
    meta = json.loads(r.output)
    assert meta["format"] == "nertool-torchscript" and "scores" in meta and meta["scheme"] == "IOB2"


def test_cli_tag_with_exported_file(exported, tmp_path):
    p = tmp_path / "in.txt"
    p.write_text("Anna Berg visited Oslo .\n")
    r = runner.invoke(app, ["tag", str(exported), str(p), "--format", "inline"])
    assert r.exit_code == 0, r.output
    assert "](PER)" in r.output or "](LOC)" in r.output


@pytest.mark.skipif(not (SHARED / "conll2003").is_dir() or "en" not in bundled_models(), reason="needs ../shared and the bundled model")
def test_exported_equals_eager_on_conll2003_test(tmp_path):
    sents = [t for t, _ in read_conll(SHARED / "conll2003" / "test.txt")]
    out = export(load("en"), tmp_path / "en.pt")
    eager = [r.tags for r in Tagger.load("en").tag_sentences(sents, scores=False)]
    m = torch.jit.load(str(out))
    scripted = []
    for i in range(0, len(sents), 512):
        scripted += m.tag(sents[i : i + 512])
    assert scripted == eager


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_exported_on_cuda_equals_eager_on_cpu(tiny_model, tiny_corpus, exported):
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    eager = [r.tags for r in Tagger.load(tiny_model).tag_sentences(sents, scores=False)]
    m = torch.jit.load(str(exported), map_location="cuda")
    flatten_rnn_weights(m)  # else cuDNN warns (an error under this suite's settings)
    assert m.tag(sents) == eager
    words, chars, idx, mask = m.encode(sents[:3])
    assert words.is_cuda and mask.is_cuda
    on_gpu = Tagger.load(str(exported), device="cuda").tag_sentences(sents, scores=False)
    assert [r.tags for r in on_gpu] == eager


def test_exported_encodes_characters_like_the_model(tiny_model, exported):
    from nertool.model.encoding import Encoder
    from nertool.store.checkpoint import load_model

    b = load_model(tiny_model)
    sents = [["Zoë", "東京", "😀x", "Anna"], ["a" * 60]]
    ours = Encoder(b.words, b.chars, b.model.config.max_word_chars).collate(Encoder(b.words, b.chars, 40).encode(sents), [0, 1])
    words, chars, idx, mask = torch.jit.load(str(exported)).encode(sents)
    assert torch.equal(words, ours.words) and torch.equal(chars, ours.chars)
    assert torch.equal(idx, ours.char_index) and torch.equal(mask, ours.mask)


def test_a_string_given_to_the_exported_tag_for_a_token_list_is_refused(exported):
    m = torch.jit.load(str(exported))
    # torch hands the file ["EU rejects"] as [["E", "U", " ", ...]]: the space token gives it away
    with pytest.raises(Exception, match="tag\\(\\) takes token lists"):
        m.tag(["EU rejects German calls"])
    with pytest.raises(Exception, match="sentence 0, token 1 is empty"):
        m.tag([["EU", ""]])
    assert len(m.tag([["EU", "rejects"]])[0]) == 2
