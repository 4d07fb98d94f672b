"""Interrupted training: SIGKILL in the middle of an epoch, then --resume, ends exactly like an
uninterrupted run with the same seed."""
import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import ENV, SAMPLE, run_cli

pytestmark = pytest.mark.slow  # multi-process runs: make test-fast leaves them out

ARGS = ["--dev", str(SAMPLE / "dev.conll"), "--epochs", "6", "--batch-size", "2", "--hidden-size", "16",
        "--lr", "0.01", "--threads", "1", "--seed", "7"]




def history(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]



def nertool(*args):
    return run_cli(*args, timeout=600)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    p = nertool("train", str(SAMPLE / "train.conll"), "--out", str(full), *ARGS)
    assert p.returncode == 0, p.stderr

    p = subprocess.Popen([sys.executable, "-m", "nertool", "train", str(SAMPLE / "train.conll"), "--out", str(cut), *ARGS],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = cut / "train_state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 2:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = json.loads(state.read_text())["epoch"]
    assert 2 <= done < 6, "the kill must land before the run ends"

    p = nertool("train", str(SAMPLE / "train.conll"), "--resume", str(cut), "--dev", str(SAMPLE / "dev.conll"))
    assert p.returncode == 0, p.stderr
    a, b = history(full), history(cut)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["dev_f1"] for r in a] == [r["dev_f1"] for r in b]
    fa = json.loads((full / "config.json").read_text())["scores"]
    fb = json.loads((cut / "config.json").read_text())["scores"]
    assert fa["dev"]["f1"] == fb["dev"]["f1"] and fa["best_epoch"] == fb["best_epoch"]
    assert (full / "model.safetensors").read_bytes() == (cut / "model.safetensors").read_bytes()


def test_resume_without_state_is_a_clear_error(tmp_path):
    (tmp_path / "run").mkdir()
    p = nertool("train", str(SAMPLE / "train.conll"), "--resume", str(tmp_path / "run"))
    assert p.returncode == 2
    err = p.stderr
    assert "cannot resume" in err and "Traceback" not in err
