"""Issue 36: nothing lost, nothing silent. One training per run directory (a lock that names its
holder and is taken over from a killed process); bulk outputs that never collide, are skipped by
a fingerprint of their input, are never read back as inputs, and leave no stale temporaries."""
from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import SAMPLE, popen_cli, run_cli, wait_until

from nertool.errors import NertoolError
from nertool.fileio import LOCK, locked


def test_a_directory_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with locked(tmp_path / "run", "run directory"):
        with pytest.raises(NertoolError, match=rf"in use by process {os.getpid()} \("):
            with locked(tmp_path / "run", "run directory"):
                pass
    with locked(tmp_path / "run", "run directory"):  # released: free again
        pass


@pytest.mark.slow
def test_a_second_training_into_a_live_run_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path):
    slow = tmp_path / "slow.toml"
    slow.write_text("[train]\nepochs = 200\npatience = 0\n", encoding="utf-8")
    out = tmp_path / "run"
    train = ["train", SAMPLE / "train.conll", "--dev", SAMPLE / "dev.conll", "--out", out, "--config", slow,
             "--threads", "1"]
    first = popen_cli(*train)
    try:
        assert wait_until(lambda: (out / "metrics.jsonl").exists(), 120, interval=0.2)
        for again in ([*train, "--force"], ["train", SAMPLE / "train.conll", "--resume", out]):
            r = run_cli(*again)
            assert r.returncode == 2, r.stderr
            assert f"in use by process {first.pid} (" in r.stderr and "Traceback" not in r.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    holder = json.loads((out / LOCK).read_text())
    assert holder["pid"] == first.pid  # the dead process's lock file is still there ...
    r = run_cli("train", SAMPLE / "train.conll", "--dev", SAMPLE / "dev.conll", "--out", out, "--force",
                "--epochs", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr  # ... and is taken over
