"""`nertool tune`: parameters to configurations, bad input before the first trial, and a tune
killed mid-trial that resumes with the same command keeping every finished trial."""
from __future__ import annotations

import csv
import signal
import sqlite3

import pytest
from conftest import SAMPLE, popen_cli, run_cli, wait_until

optuna = pytest.importorskip("optuna")

from nertool.config import Config  # noqa: E402
from nertool.training.tune import config_for, default_params, parse_budget  # noqa: E402


def test_budgets_parse():
    assert parse_budget("90s") == 90 and parse_budget("60m") == 3600 and parse_budget("1.5h") == 5400
    assert parse_budget("120") == 120
    from nertool.errors import ConfigError

    for bad in ("soon", "-5m", "0"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_the_first_trial_is_the_defaults():
    base = Config()
    assert config_for(default_params(base), base) == base
    sgd = config_for({**default_params(base), "optimizer": "sgd", "lr_scale": 2.0, "hidden_size": 64}, base)
    assert sgd.train.optimizer == "sgd" and sgd.train.lr == pytest.approx(0.03) and sgd.model.hidden_size == 64


def test_bad_input_stops_before_the_first_trial(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Anna B-PER\nBerg\n", encoding="utf-8")
    r = run_cli("tune", str(bad), "--dev", str(SAMPLE / "dev.conll"), "--out", str(tmp_path / "t"), "--budget", "1m")
    assert r.returncode == 2 and "bad.conll:2" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "t" / "study.db").exists()


def _finished(db):
    if not db.exists():
        return []
    with sqlite3.connect(db) as c:
        try:
            return c.execute("select number, value from trials join trial_values using (trial_id) "
                             "where state = 'COMPLETE' order by number").fetchall()
        except sqlite3.OperationalError:  # tables not made yet
            return []


@pytest.mark.slow
def test_a_tune_killed_mid_trial_resumes_with_every_finished_trial(tmp_path):
    small = tmp_path / "small.toml"
    small.write_text("[train]\nepochs = 3\n", encoding="utf-8")
    out = tmp_path / "tuned"
    args = ["tune", SAMPLE / "train.conll", "--dev", SAMPLE / "dev.conll", "--test", SAMPLE / "test.conll",
            "--out", out, "--budget", "4m", "--trials", "4", "--config", small]
    p = popen_cli(*args)
    assert wait_until(lambda: len(_finished(out / "study.db")) >= 1, 240, interval=0.2)
    p.send_signal(signal.SIGKILL)  # mid-trial: the next trial has started
    p.wait()
    before = _finished(out / "study.db")
    assert not (out / "best").exists()
    r = run_cli(*args, timeout=400)
    assert r.returncode == 0, r.stderr
    after = _finished(out / "study.db")
    assert after[: len(before)] == before  # every finished trial kept, its score unchanged
    rows = list(csv.DictReader((out / "trials.csv").read_text().splitlines()))
    assert len(rows) >= 4 and sum(row["state"] == "complete" for row in rows) >= len(before)
    assert "trial" in r.stderr and "best" in r.stderr
    best = max(after, key=lambda t: t[1])
    assert (out / "best.toml").read_text().startswith(f"# nertool tune: trial {best[0]},")
    assert (out / "tune.png").read_bytes()[:4] == b"\x89PNG"
    tagged = run_cli("tag", out / "best", "-", stdin="Anna Berg visited Oslo .\n")
    assert tagged.returncode == 0 and '"tags"' in tagged.stdout


def test_trials_train_on_a_seeded_sample_in_order():
    from nertool.data.conll import load_corpus
    from nertool.training.tune import trial_corpus

    corpus = load_corpus(str(SAMPLE / "train.conll"), str(SAMPLE / "dev.conll"))
    full = corpus.sentences("train")
    cut = trial_corpus(corpus, 40, 42)
    sample = cut.sentences("train")
    assert len(sample) == 40 and cut.sentences("dev") == corpus.sentences("dev")
    rest = iter(full)
    assert all(any(s == t for t in rest) for s in sample)  # a subsequence: the corpus's order kept
    assert trial_corpus(corpus, 40, 42).sentences("train") == sample  # the same seed, the same sample
    assert trial_corpus(corpus, 0, 42) is corpus and trial_corpus(corpus, len(full), 42) is corpus


def test_a_sampled_search_trains_the_best_settings_on_every_sentence(tmp_path):
    from nertool.data.conll import load_corpus
    from nertool.store.rundir import read_state
    from nertool.training.state import fingerprint
    from nertool.training.tune import trial_corpus, tune

    lines = []
    r = tune(str(SAMPLE / "train.conll"), str(SAMPLE / "dev.conll"), tmp_path / "t", 120,
             Config().override({"train": {"epochs": 1}}), max_trials=1, trial_sentences=40, report=lines.append)
    corpus = load_corpus(str(SAMPLE / "train.conll"))
    trained_on = read_state(tmp_path / "t" / "best")["corpus"]["train"]
    assert trained_on == fingerprint(corpus.sentences("train"))  # best/ learned from all 160 sentences
    assert trained_on != fingerprint(trial_corpus(corpus, 40, 42).sentences("train"))
    assert r.best_trial == 0 and any("on all 160 training sentences" in line for line in lines)
    assert any(line.startswith("trial   0") for line in lines)  # --trials 1 runs one trial (it ran none)
    assert not (tmp_path / "t" / "best.partial").exists()
