import json
import os
import subprocess
import sys

import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from typer.testing import CliRunner

from nertool.cli.app import app
from nertool.data.conll import read_conll
from nertool.store.checkpoint import load_model
from nertool.training.evaluate import predict

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
    machine = config["machine"]  # what the run was trained on, for reproducing it
    assert machine["threads"] == 1 and machine["device"] == "cpu" and machine["torch"] == torch.__version__
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert f"({machine['cpu_capability']}), 1 thread, cpu, torch {torch.__version__}" in text


def _spans(seq):
    """IOB2 chunks by hand, conlleval style (an I- that does not continue opens a chunk)."""
    out, cur = set(), None
    for i, t in enumerate(list(seq) + ["O"]):
        typ = t[2:] if t != "O" else None
        if cur and (t == "O" or t.startswith("B-") or typ != cur[0]):
            out.add((cur[0], cur[1], i))
            cur = None
        if typ and cur is None:
            cur = (typ, i)
    return out


def test_evaluate_json_equals_an_independent_span_count(tiny_model, tiny_corpus):
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(tiny_corpus["test"]), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    sents = read_conll(tiny_corpus["test"])
    pred = predict(load_model(tiny_model), [t for t, _ in sents])
    gold_n = pred_n = hit = 0
    for (_, g), p in zip(sents, pred):
        gs, ps = _spans(g), _spans(p)
        gold_n, pred_n, hit = gold_n + len(gs), pred_n + len(ps), hit + len(gs & ps)
    assert 0 < hit <= gold_n and pred_n > 0
    assert abs(got["precision"] - hit / pred_n) < 1e-12 and abs(got["recall"] - hit / gold_n) < 1e-12
    assert abs(got["f1"] - 2 * hit / (gold_n + pred_n)) < 1e-12


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


def test_evaluate_strict_mode(tiny_model, tmp_path):
    # a gold chunk that starts with I- counts in the default (conlleval) mode, not in strict IOB2
    p = tmp_path / "t.txt"
    p.write_text("Anna I-PER\nsings O\n\nBob B-PER\nruns O\n")
    scores = {}
    for mode in ("default", "strict"):
        r = runner.invoke(app, ["evaluate", str(tiny_model), str(p), "--json", "--mode", mode])
        assert r.exit_code == 0, r.output
        scores[mode] = json.loads(r.output)
    assert scores["default"]["per_type"]["PER"]["support"] == 2
    assert scores["strict"]["per_type"]["PER"]["support"] == 1


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
    r = subprocess.run([sys.executable, "-m", "nertool", "evaluate", str(tiny_model), str(tiny_corpus["test"]), "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)) >= {"precision", "recall", "f1", "per_type"}
    r = subprocess.run([sys.executable, "-m", "nertool", "evaluate", str(tmp_path / "nope"), str(tiny_corpus["test"])],
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
