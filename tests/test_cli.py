import json
import os
import subprocess
import sys
from pathlib import Path

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from typer.testing import CliRunner

from nertool.checkpoint import load_model
from nertool.cli import app
from nertool.conll import read_conll
from nertool.evaluate import predict

runner = CliRunner()


def test_train_save_load_evaluate_through_cli(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(tiny_corpus["train"]), "--dev", str(tiny_corpus["dev"]), "--test", str(tiny_corpus["test"]),
                            "--out", str(out), "--epochs", "6", "--batch-size", "8", "--lr", "0.01", "--hidden-size", "32",
                            "--threads", "1"])
    assert r.exit_code == 0, r.output
    for name in ("config.json", "words.json", "chars.json", "model.safetensors", "metrics.jsonl", "metrics.png"):
        assert (out / name).is_file()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all("dev_f1" in json.loads(l) for l in lines)
    config = json.loads((out / "config.json").read_text())
    assert config["scheme"] == "IOB2" and config["internal_scheme"] == "BIOES"
    assert config["scores"]["test"]["f1"] > 0.5
    r = runner.invoke(app, ["evaluate", str(out), str(tiny_corpus["test"])])
    assert r.exit_code == 0, r.output
    assert "PER" in r.output and "LOC" in r.output and "ORG" in r.output
    r = runner.invoke(app, ["evaluate", str(out), str(tiny_corpus["test"]), "--json"])
    assert r.exit_code == 0
    assert json.loads(r.output)["f1"] == config["scores"]["test"]["f1"]
    r = runner.invoke(app, ["info", str(out)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())  # the table's cells, unwrapped
    assert f"sentences: train {config['corpus']['sentences']['train']}, dev " in text
    assert f"best epoch {config['scores']['best_epoch']}, stopped by epochs" in text
    assert f"f1 {100 * config['scores']['test']['f1']:.2f}" in text
    assert "{" not in text  # no Python reprs of dicts


def test_evaluate_json_equals_seqeval(tiny_model, tiny_corpus):
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(tiny_corpus["test"]), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    sents = read_conll(tiny_corpus["test"])
    gold = [g for _, g in sents]
    pred = predict(load_model(tiny_model), [t for t, _ in sents])
    assert got["f1"] == f1_score(gold, pred)
    assert got["precision"] == precision_score(gold, pred)
    assert got["recall"] == recall_score(gold, pred)
    report = classification_report(gold, pred, output_dict=True)
    for typ, s in got["per_type"].items():
        assert s["f1"] == report[typ]["f1-score"] and s["support"] == report[typ]["support"]


def test_evaluate_strict_mode(tiny_model, tiny_corpus):
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(tiny_corpus["test"]), "--json", "--mode", "strict"])
    assert r.exit_code == 0, r.output
    assert 0 <= json.loads(r.output)["f1"] <= 1


def test_malformed_corpus_is_one_line_exit_2(tmp_path, tiny_corpus):
    bad = tmp_path / "bad.txt"
    bad.write_text("EU X B-ORG\nrejects X O\nGerman B-MISC\n")
    r = runner.invoke(app, ["train", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert r.output.strip() == f"error: {bad}:3: expected 3 columns, found 2"
    assert "Traceback" not in r.output


def test_unknown_tag_shape_and_binary_file(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("EU B-ORG\nrejects PERSON\n")
    r = runner.invoke(app, ["train", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and f"{bad}:2:" in r.output
    binf = tmp_path / "bin.txt"
    binf.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    r = runner.invoke(app, ["train", str(binf), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not text" in r.output


def test_unknown_config_key_is_an_error(tmp_path, tiny_corpus):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nhiden_size = 10\n")
    r = runner.invoke(app, ["train", str(tiny_corpus["train"]), "--out", str(tmp_path / "o"), "--config", str(cfg)])
    assert r.exit_code == 2 and "hiden_size" in r.output


def test_subprocess_evaluate_and_error(tiny_model, tiny_corpus, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-m", "nertool.cli", "evaluate", str(tiny_model), str(tiny_corpus["test"]), "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)) >= {"precision", "recall", "f1", "per_type"}
    r = subprocess.run([sys.executable, "-m", "nertool.cli", "evaluate", str(tmp_path / "nope"), str(tiny_corpus["test"])],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_every_command_has_help_with_an_example():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0 and "Examples" in r.output
    helps = {c.name: runner.invoke(app, [c.name, "--help"], env={"COLUMNS": "200"}) for c in app.registered_commands}
    assert {"tag", "train", "evaluate", "export", "info"} <= set(helps)
    for name, r in helps.items():
        assert r.exit_code == 0, name
        assert "Example" in r.output, name
    assert "[data], [model], [train]" in helps["train"].output  # not swallowed as rich markup
