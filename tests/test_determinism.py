"""Same seed, same weights, at more than one thread: gradients summed in a fixed order, so two
trainings (and an interrupted and resumed one) are bit-identical at --threads 2."""
import copy
import json
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ENV, wait_until, write_synthetic_corpus

pytestmark = pytest.mark.slow  # multi-process and SIGKILL runs: make test-fast leaves them out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    # batches of 32 sentences x 24 tokens: big enough for torch to split gradient sums over threads
    return write_synthetic_corpus(d / "train.conll", 256, seed=1), write_synthetic_corpus(d / "dev.conll", 32, seed=2)


def test_gradients_of_a_batch_do_not_depend_on_the_run(corpus):
    from nertool.config import Config
    from nertool.data.conll import load_corpus
    from nertool.model.encoding import Encoder
    from nertool.training.build import build_bundle
    from nertool.training.build import encode_split as _encode_split
    from nertool.training.report import SilentReporter

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = Config()
        c = load_corpus(corpus[0], None, None, cfg.data)
        sents = c.sentences("train")
        bundle = build_bundle(cfg, sents, c.labels, c.scheme, SilentReporter())
        enc = Encoder(bundle.words, bundle.chars, cfg.model.max_word_chars)
        batch = next(iter(enc.batches(_encode_split(bundle, enc, sents), 32)))
        grads = []
        for _ in range(4):  # fresh copies: fresh memory, as in a new process
            m = copy.deepcopy(bundle.model).train()
            torch.manual_seed(0)
            m.loss(batch.words, batch.chars, batch.char_index, batch.mask, batch.tags).backward()
            grads.append({n: p.grad for n, p in m.named_parameters() if p.grad is not None})
        for g in grads[1:]:
            assert [n for n in g if not torch.equal(g[n], grads[0][n])] == []
    finally:
        torch.set_num_threads(before)


def _train(corpus, out, *extra):
    return [sys.executable, "-m", "nertool", "train", str(corpus[0]), "--dev", str(corpus[1]), "--out", str(out),
            "--threads", "2", "--seed", "7", "--hidden-size", "32", *extra]


def test_two_trainings_at_two_threads_are_bit_identical(corpus, tmp_path):
    for run in ("a", "b"):
        p = subprocess.run(_train(corpus, tmp_path / run, "--epochs", "1"), env=ENV, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_sigkill_then_resume_at_two_threads_is_bit_identical(corpus, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    p = subprocess.run(_train(corpus, full, "--epochs", "3"), env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr

    state = cut / "train_state.json"
    p = subprocess.Popen(_train(corpus, cut, "--epochs", "3"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: state.exists() and json.loads(state.read_text())["epoch"] >= 1, 300)
    p.send_signal(signal.SIGKILL)  # the nertool process itself, in its second epoch
    p.wait()
    assert json.loads(state.read_text())["epoch"] < 3, "the kill must land before the run ends"

    p = subprocess.run([sys.executable, "-m", "nertool", "train", str(corpus[0]), "--dev", str(corpus[1]),
                        "--resume", str(cut)], env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert (full / "model.safetensors").read_bytes() == (cut / "model.safetensors").read_bytes()


def test_the_same_seed_gives_the_same_weights_beside_busy_processes(corpus, tmp_path):
    """Issue 35: four busy processes beside a training once gave different weights. Two CPU-bound
    processes beside a 2-thread training on 2 cores (the suite's other workers add more)."""
    p = subprocess.run(_train(corpus, tmp_path / "idle", "--epochs", "1"), env=ENV, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        p = subprocess.run(_train(corpus, tmp_path / "busy", "--epochs", "1"), env=ENV, capture_output=True,
                           text=True, timeout=600)
    finally:
        for b in burners:
            b.kill()
            b.wait()
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "idle" / "model.safetensors").read_bytes() == (tmp_path / "busy" / "model.safetensors").read_bytes()
