"""Ensembles (``nertool ensemble``, :mod:`nertool.training.ensemble`): several runs of one recipe become
one model whose emissions and CRF scores are the members' means."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def _train(out: Path, seed: int, train_file: Path = SAMPLE / "train.conll") -> Path:
    from nertool.config import Config
    from nertool.data.conll import load_corpus
    from nertool.training.loop import train

    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=12, char_hidden=6, num_layers=1),
                 train=base.train.replace(epochs=3, batch_size=8, lr=0.01, patience=0, threads=1, seed=seed))
    train(load_corpus(train_file, SAMPLE / "dev.conll", SAMPLE / "test.conll"), cfg, out)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("ensemble")
    return [_train(root / f"s{s}", s) for s in (1, 2, 3)]


def _sentences(split: str = "test") -> list[list[str]]:
    blocks = (SAMPLE / f"{split}.conll").read_text(encoding="utf-8").split("\n\n")
    return [[line.split()[0] for line in b.splitlines()] for b in blocks if b.strip()]


def test_the_ensemble_scores_are_the_members_means_and_it_decodes_them(runs):
    from nertool.data.tags import id_decoder
    from nertool.model.decoding import marginals, viterbi
    from nertool.model.encoding import Encoder
    from nertool.store.checkpoint import load_model
    from nertool.training.ensemble import combine
    from nertool.training.evaluate import predict

    members = [load_model(r) for r in runs]
    ens = combine(members)
    assert ens.model.members == 3
    sents = _sentences()
    enc = Encoder(ens.words, ens.chars, ens.model.config.max_word_chars)
    batch = next(iter(enc.batches(enc.encode(sents), 64)))
    with torch.no_grad():
        em = ens.model.emissions(batch.words, batch.chars, batch.char_index, batch.mask)
        each = [m.model.emissions(batch.words, batch.chars, batch.char_index, batch.mask) for m in members]
        assert torch.allclose(em, torch.stack(each).mean(0), atol=1e-5)
        for got, parts in zip(ens.model.transition_scores(), zip(*(m.model.transition_scores() for m in members))):
            assert torch.allclose(got, torch.stack(parts).mean(0), atol=1e-6)
        # the features-first path (the tagger's) gives the same scores
        feats = ens.model.word_features(batch.chars)
        assert feats.shape[1] == sum(m.model.word_features(batch.chars).shape[1] for m in members)
        assert torch.allclose(ens.model.emissions_from_features(batch.words, feats, batch.char_index, batch.mask), em, atol=1e-5)
        p = marginals(em, batch.mask, *ens.model.transition_scores())
        assert torch.allclose(p.sum(-1)[batch.mask], torch.ones(int(batch.mask.sum())), atol=1e-4)
        best, _ = viterbi(em, batch.mask, *ens.model.transition_scores())
    decode = id_decoder(ens.labels, ens.internal_scheme, ens.scheme)
    expected = {i: decode(row[: len(sents[i])]) for row, i in zip(best.tolist(), batch.index)}
    got = predict(ens, sents)
    assert all(got[i] == tags for i, tags in expected.items())
    # one ensemble is not the same as any one member (else this test would prove nothing)
    assert any(not torch.allclose(em, e, atol=1e-3) for e in each)


def test_a_saved_ensemble_loads_back_tags_the_same_and_keeps_one_pretrained_table(runs, tmp_path):
    from nertool.store.checkpoint import load_model
    from nertool.training.ensemble import combine_models
    from nertool.training.evaluate import predict

    ens = combine_models(runs, tmp_path / "ens", test=SAMPLE / "test.conll")
    config = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert config["members"] == 3 and config["ensemble"]["members"] == [str(r) for r in runs]
    members = [json.loads((r / "config.json").read_text()) for r in runs]
    assert config["ensemble"]["member_machines"] == [m["machine"] for m in members]
    assert all(m["machine"]["threads"] == 1 for m in members)
    assert 0.0 <= config["scores"]["test"]["f1"] <= 1.0
    back = load_model(tmp_path / "ens")
    sents = _sentences()
    assert predict(back, sents) == predict(ens, sents)
    from nertool import Tagger

    docs = Tagger.load(str(tmp_path / "ens")).tag_tokens(sents, nbest=2)  # the cached-features path, n-best
    assert [d.tags for d in docs] == predict(ens, sents)
    for d in docs:  # the best path first, then a worse one, as probabilities of the averaged CRF
        (best, p1), *rest = d.nbest[0]
        assert best == d.tags and 0 < p1 <= 1 and all(p <= p1 + 1e-6 for _, p in rest)
    table = back.model.emitter.pretrained
    assert all(m.pretrained is table for m in back.model.emitter.members)
    back.model.double()  # moving the model (here: a dtype) keeps the members on the one table
    assert all(m.pretrained is back.model.emitter.pretrained for m in back.model.emitter.members)
    assert back.model.emitter.pretrained.dtype == torch.float64


def test_an_exported_ensemble_tags_as_the_directory(runs, tmp_path):
    from nertool.store.export import export
    from nertool.store.loading import load
    from nertool.training.ensemble import combine_models
    from nertool.training.evaluate import predict

    ens = combine_models(runs[:2], tmp_path / "ens")
    export(ens, tmp_path / "ens.pt")
    sents = _sentences()
    assert predict(load(tmp_path / "ens.pt"), sents) == predict(ens, sents)
    scripted = torch.jit.load(str(tmp_path / "ens.pt"))
    assert scripted.tag(sents[:3]) == [list(t) for t in predict(ens, sents[:3])]


def test_combine_refuses_models_of_other_recipes_or_data(runs, tmp_path):
    from nertool.errors import ModelError
    from nertool.store.checkpoint import compact_model, load_model
    from nertool.training.ensemble import combine, combine_models

    a = load_model(runs[0])
    with pytest.raises(ModelError, match="at least two"):
        combine([a])
    other = tmp_path / "other.conll"  # other training data: another vocabulary
    other.write_text((SAMPLE / "train.conll").read_text(encoding="utf-8").split("\n\n", 40)[-1], encoding="utf-8")
    with pytest.raises(ModelError, match="differs"):
        combine([a, load_model(_train(tmp_path / "o", 1, other))])
    ens = combine_models(runs[:2], tmp_path / "ens")
    with pytest.raises(ModelError, match="already an ensemble"):
        combine([ens, a])
    with pytest.raises(ModelError, match="ensemble"):
        compact_model(tmp_path / "ens", tmp_path / "small")


def test_cli_ensemble_writes_a_model_that_info_and_evaluate_read(runs, tmp_path):
    from nertool.cli.app import app

    runner = CliRunner()
    out = tmp_path / "ens"
    r = runner.invoke(app, ["ensemble", *map(str, runs), "--out", str(out), "--test", str(SAMPLE / "test.conll")])
    assert r.exit_code == 0, r.output
    assert "an ensemble of 3 models" in r.output and "test F1" in r.output
    r = runner.invoke(app, ["info", str(out)])
    assert r.exit_code == 0 and "ensemble" in r.output and "networks" in r.output, r.output
    assert "an ensemble of 3 networks" in (out / "README.md").read_text()
    r = runner.invoke(app, ["evaluate", str(out), str(SAMPLE / "test.conll"), "--json"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "config.json").read_text())["scores"]["test"]["f1"]
    assert json.loads(r.output)["f1"] == pytest.approx(saved)
    r = runner.invoke(app, ["ensemble", str(runs[0]), str(runs[1]), "--out", str(out)])
    assert r.exit_code == 2 and "new or empty directory" in r.output


def test_cli_ensemble_of_mismatched_models_is_one_line_exit_2(runs, tmp_path):
    from nertool.store.checkpoint import load_model, save_model
    from nertool.training.ensemble import combine

    save_model(tmp_path / "ens", combine([load_model(r) for r in runs[:2]]))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-m", "nertool", "ensemble", str(runs[2]), str(tmp_path / "ens"),
                        "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "already an ensemble" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()
