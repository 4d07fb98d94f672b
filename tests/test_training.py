"""The training loop's steps: dev split, stop rules, weight averaging, optimisers, config
precedence, interruption and resume, IOB1 corpora end to end."""
import json

import pytest
import torch
from conftest import SAMPLE
from safetensors.torch import load_file
from typer.testing import CliRunner

from nertool.cli.app import app
from nertool.cli.train import config_from_options
from nertool.config import Config, TrainConfig
from nertool.data import tags as T
from nertool.data.conll import load_corpus, read_conll
from nertool.errors import NertoolError
from nertool.store.loading import load
from nertool.training.evaluate import evaluate_file, predict
from nertool.training.loop import stop_reason, train
from nertool.training.optim import CheckpointAverage, WeightAverage
from nertool.training.state import LoopState

runner = CliRunner()


def tiny(epochs=2, **train):
    base = Config()
    return Config(model=base.model.replace(hidden_size=16, char_hidden=8),
                  train=base.train.replace(**{"epochs": epochs, "batch_size": 8, "lr": 0.01, "threads": 1,
                                              "small_corpus": "off", **train}))


def test_dev_fraction_keeps_held_out_sentences_out_of_the_vocabularies(tmp_path):
    # every sentence has a word (and a character) of its own: the vocabulary must hold only
    # the training part's
    p = tmp_path / "c.txt"
    p.write_text("".join(f"w{i}x{chr(0x4E00 + i)} B-PER\nran O\n\n" for i in range(40)), encoding="utf-8")
    result = train(load_corpus(p), tiny(1, dev_fraction=0.25), tmp_path / "run")
    assert result.best_dev_f1 is not None and "dev_f1" in result.history[0]
    bundle = load(tmp_path / "run")
    own = [w for w in bundle.words.index() if w.startswith("w") and w[-1] >= "\u4e00"]
    assert len(own) == 30  # 40 sentences, 10 held out
    cjk = [c for c in bundle.chars.chars if 0x4E00 <= ord(c) < 0x4E00 + 40]
    assert len(cjk) == 30


def test_stop_rules():
    state = LoopState(config={}, epoch=3, bad_epochs=2)
    assert stop_reason(state, TrainConfig(patience=2), 1.0) == "patience"
    assert stop_reason(state, TrainConfig(patience=3), 1.0) is None
    assert stop_reason(state, TrainConfig(patience=0), 1.0) is None  # 0 disables
    # three epochs took 3 minutes: a fourth would end at 4 > 3.5 minutes
    assert stop_reason(state, TrainConfig(patience=0, max_minutes=3.5), 180.0) == "time"
    assert stop_reason(state, TrainConfig(patience=0, max_minutes=4.5), 180.0) is None


def test_patience_stops_a_run_that_stops_improving(tmp_path):
    # dev F1 of 0 every epoch (no entities in dev): only the first epoch is an improvement
    dev = tmp_path / "dev.txt"
    dev.write_text("nothing O\nhere O\n")
    corpus = load_corpus(SAMPLE / "train.conll", dev)
    r = train(corpus, tiny(10, patience=2, min_updates=0), tmp_path / "run")
    assert r.stopped_by == "patience" and r.epochs_run == 3 and r.best_epoch == 1


def test_patience_waits_for_the_minimum_number_of_updates():
    state = LoopState(config={}, epoch=3, bad_epochs=2)
    tc = TrainConfig(patience=2, min_updates=100)
    assert stop_reason(state, tc, 1.0, updates=99) is None  # a small corpus is not given up on early
    assert stop_reason(state, tc, 1.0, updates=100) == "patience"


def test_budgets_follow_the_corpus_and_keep_what_the_user_set():
    from nertool.training import budget

    def resolved(n, world=1, **train):
        cfg, notes = budget.resolve(Config(train=TrainConfig(**train)), n, world)
        return cfg.train.batch_size, cfg.train.epochs, notes

    assert resolved(14041) == (32, 40, [])  # CoNLL-2003: the batch and epochs chosen on it
    assert resolved(200) == (4, 40, [])  # 50 batches an epoch: 2,000 updates in 40 epochs
    assert resolved(1000) == (15, 40, [])
    assert resolved(60) == (4, 134, [])  # 15 batches an epoch: more epochs to reach 2,000 updates
    assert resolved(5) == (4, 200, [])  # at most 200 epochs
    assert resolved(14041, world=2) == (16, 40, [])  # the batch is per process: the global batch stays 32
    batch, epochs, notes = resolved(219, epochs=5, batch_size=32)  # the user's own budget is kept, and warned about
    assert (batch, epochs) == (32, 5) and len(notes) == 1
    assert "35 updates on 219 training sentences" in notes[0] and "at least 286" in notes[0]


def test_a_small_corpus_gets_the_small_corpus_settings_where_the_user_set_nothing():
    from nertool.training import budget

    small, note = budget.small_corpus(Config(), 200)
    assert (small.model.hidden_size, small.model.num_layers, small.train.optimizer, small.train.batch_size) == \
        (128, 1, "nadam", 16)
    assert "a small corpus (200 training sentences)" in note and 'small_corpus = "off"' in note
    assert budget.small_corpus(Config(), 2048) == (Config(), None)  # CoNLL-sized corpora: the plain defaults
    off = Config().override({"train": {"small_corpus": "off"}})
    assert budget.small_corpus(off, 200) == (off, None)
    mine = Config().override({"model": {"hidden_size": 64}, "train": {"lr": 0.01}})
    kept, _ = budget.small_corpus(mine, 200)  # what the user set stays; the rest follows the corpus
    assert (kept.model.hidden_size, kept.train.lr, kept.model.num_layers) == (64, 0.01, 1)


def test_a_model_that_learned_nothing_is_named():
    from nertool.training.budget import learned_nothing

    gold = [["B-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    assert "predicts no entity" in learned_nothing(gold, [["O"] * 3, ["O"] * 2])
    assert "one type only" in learned_nothing(gold, [["B-PER", "O", "B-PER"], ["O", "O"]])
    assert learned_nothing(gold, [["B-PER", "O", "B-LOC"], ["O", "O"]]) is None


def test_a_run_that_learned_nothing_warns_and_its_card_says_so(tmp_path):
    """One epoch of three updates on the sample corpus predicts nothing useful on dev (no entity,
    or one type of three): the result, the terminal and the model card say so."""
    from nertool.store import rundir
    from nertool.training.report import SilentReporter

    said = []

    class Recorder(SilentReporter):
        def message(self, text):
            said.append(text)

    corpus = load_corpus(SAMPLE / "train.conll", SAMPLE / "dev.conll")
    r = train(corpus, tiny(1, batch_size=64, lr=0.0001), tmp_path / "run", Recorder())
    learned = [w for w in r.warnings if w.startswith("the best model predicts")]
    assert len(learned) == 1 and ("no entity" in learned[0] or "one type only" in learned[0]), r.warnings
    assert any("rarely train a useful model" in w for w in r.warnings)
    assert f"warning: {learned[0]}" in said
    assert learned[0] in rundir.read_card(tmp_path / "run")


def test_weight_average_follows_the_formula_and_swaps_back():
    lin = torch.nn.Linear(2, 1)
    avg = WeightAverage(lin, decay=0.9)
    start = [p.detach().clone() for p in lin.parameters()]
    expected = [s.clone() for s in start]
    for step in range(1, 4):
        with torch.no_grad():
            for p in lin.parameters():
                p.add_(1.0)
        avg.update()
        d = min(0.9, (1 + step) / (10 + step))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, lin.parameters())]
    assert all(torch.allclose(a, e) for a, e in zip(avg.shadow, expected))
    live = [p.detach().clone() for p in lin.parameters()]
    avg.swap()
    assert all(torch.allclose(p, e) for p, e in zip(lin.parameters(), expected))
    avg.swap()
    assert all(torch.equal(p, l) for p, l in zip(lin.parameters(), live))


def test_sgd_trains(tmp_path):
    corpus = load_corpus(SAMPLE / "train.conll", SAMPLE / "dev.conll")
    r = train(corpus, tiny(4, optimizer="sgd", ema=0.0), tmp_path / "run")
    losses = [h["loss"] for h in r.history]
    assert losses[-1] < losses[0] and r.best_dev_f1 > 0


def test_toml_values_yield_to_command_line_options(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nepochs = 3\nlr = 0.1\n[model]\nhidden_size = 12\n")
    cfg = config_from_options(toml, {"epochs": 1, "lr": None, "hidden_size": None})
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.hidden_size) == (1, 0.1, 12)
    r = runner.invoke(app, ["train", str(SAMPLE / "train.conll"), "--out", str(tmp_path / "run"), "-c", str(toml),
                            "--epochs", "1", "--threads", "1", "--optimizer", "nadam", "--clip", "1"])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["epochs"] == 1 and saved["train"]["lr"] == 0.1 and saved["model"]["hidden_size"] == 12
    assert saved["train"]["optimizer"] == "nadam" and saved["train"]["clip"] == 1.0


class Crash(BaseException):
    """Stands for the process dying: nothing of the loop catches it."""


class CrashAt:
    def __init__(self, epoch, step, exc):
        self.at, self.exc, self.n = (epoch, step), exc, 0

    def start(self, epochs, steps): pass
    def epoch_end(self, record): self.n = 0
    def message(self, text): pass

    def step(self, epoch, loss, sentences=1):
        self.n += 1
        if (epoch, self.n) == self.at:
            raise self.exc


def test_interrupt_keeps_the_best_model_so_far(tmp_path):
    corpus = load_corpus(SAMPLE / "train.conll", SAMPLE / "dev.conll")
    r = train(corpus, tiny(5), tmp_path / "run", reporter=CrashAt(3, 2, KeyboardInterrupt()))
    assert r.stopped_by == "interrupt" and r.epochs_run == 2 and 1 <= r.best_epoch <= 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["scores"]["stopped_by"] == "interrupt"


@pytest.mark.parametrize("optimizer,average", [("adam", 0), ("nadam", 0), ("adam", 2)])
def test_crash_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path, optimizer, average):
    corpus = load_corpus(SAMPLE / "train.conll", SAMPLE / "dev.conll")
    cfg = tiny(4, optimizer=optimizer, average_last=average)
    full = train(corpus, cfg, tmp_path / "full")
    with pytest.raises(Crash):
        train(corpus, cfg, tmp_path / "cut", reporter=CrashAt(3, 3, Crash()))
    assert json.loads((tmp_path / "cut" / "train_state.json").read_text())["epoch"] == 2
    resumed = train(corpus, cfg, tmp_path / "cut", resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert (tmp_path / "full" / "model.safetensors").read_bytes() == (tmp_path / "cut" / "model.safetensors").read_bytes()


def _iob1(tags2):
    """IOB2 -> IOB1 by hand: B- only where a chunk follows one of the same type."""
    out = []
    for i, t in enumerate(tags2):
        if t.startswith("B-") and not (i and tags2[i - 1] != "O" and tags2[i - 1][2:] == t[2:]):
            t = "I-" + t[2:]
        out.append(t)
    return out


def test_iob1_corpus_end_to_end(tmp_path):
    paths = {}
    for split in ("train", "dev", "test"):
        sents = read_conll(SAMPLE / f"{split}.conll")
        paths[split] = tmp_path / f"{split}.iob1"
        paths[split].write_text("".join("".join(f"{w} {t}\n" for w, t in zip(toks, _iob1(tg))) + "\n" for toks, tg in sents))
    corpus = load_corpus(paths["train"], paths["dev"], paths["test"])
    assert corpus.scheme == "IOB1"
    r = train(corpus, tiny(6, lr=0.02), tmp_path / "run")
    bundle = load(tmp_path / "run")
    assert bundle.scheme == "IOB1" and r.test["f1"] > 0.3
    pred = predict(bundle, [t for t, _ in read_conll(paths["test"])])
    assert all(T.is_valid(p, "IOB1") for p in pred)
    assert any(t.startswith("I-") for p in pred for t in p) and not any(t.startswith(("E-", "S-")) for p in pred for t in p)
    # the same gold in IOB2 scores the same (evaluate converts to the model's scheme)
    on_iob1 = evaluate_file(str(tmp_path / "run"), paths["test"])
    on_iob2 = evaluate_file(str(tmp_path / "run"), SAMPLE / "test.conll")
    assert on_iob1["f1"] == on_iob2["f1"] == r.test["f1"]


def _weights(run):
    return load_file(str(run / "model.safetensors"))


def test_checkpoint_average_is_the_mean_of_the_last_epochs_weights_and_swaps_back():
    lin = torch.nn.Linear(2, 1)
    avg = CheckpointAverage(lin, 2)
    seen = []
    for step in range(3):
        with torch.no_grad():
            lin.weight.fill_(float(step))
        seen.append(lin.weight.detach().clone())
        avg.add()
    avg.swap()
    assert torch.equal(lin.weight, (seen[1] + seen[2]) / 2)  # the first one has left the window
    avg.swap()
    assert torch.equal(lin.weight, seen[2])


def test_extending_a_finished_run_with_averaging_equals_one_run(tmp_path):
    # no dev set: the saved model is the last epoch's (EMA) weights, or with average_last the mean
    # of the last ones'; a run ended after 2 epochs and extended to 3 and then 4 trains the same
    # weights as one 4-epoch run, and the mean of its epochs 2-4 models is the averaged run's model
    corpus = load_corpus(SAMPLE / "train.conll")
    one = train(corpus, tiny(4), tmp_path / "one")
    averaged = train(corpus, tiny(4, average_last=3), tmp_path / "avg")
    assert [h["loss"] for h in averaged.history] == [h["loss"] for h in one.history]  # the same path
    run, ends = tmp_path / "ext", []
    train(corpus, tiny(2), run)
    ends.append(_weights(run))
    with pytest.raises(NertoolError, match="already ended.*give more --epochs"):
        train(corpus, tiny(2), run, resume=True)
    for epochs in (3, 4):
        train(corpus, tiny(epochs), run, resume=True)
        ends.append(_weights(run))
    assert (run / "model.safetensors").read_bytes() == (tmp_path / "one" / "model.safetensors").read_bytes()
    mean = _weights(tmp_path / "avg")
    for name, value in mean.items():
        if value.is_floating_point():
            assert torch.allclose(value, sum(e[name] for e in ends) / 3, atol=1e-6), name
    assert not torch.equal(mean["emitter.emit.weight"], ends[-1]["emitter.emit.weight"])
    with pytest.raises(NertoolError, match="different configuration"):
        train(corpus, tiny(5, lr=0.02), run, resume=True)


def test_cli_extends_a_finished_run_and_refuses_other_changes(tmp_path):
    run = tmp_path / "run"
    base = ["train", str(SAMPLE / "train.conll")]
    tiny_args = ["--epochs", "1", "--threads", "1", "--hidden-size", "16", "--batch-size", "8"]
    assert runner.invoke(app, [*base, "--out", str(run), *tiny_args]).exit_code == 0
    r = runner.invoke(app, [*base, "--resume", str(run), "--lr", "0.1"])
    assert r.exit_code == 2 and "--lr would not be applied" in r.output
    r = runner.invoke(app, [*base, "--resume", str(run), "--epochs", "2", "--average-last", "2"])
    assert r.exit_code == 0, r.output
    state = json.loads((run / "train_state.json").read_text())
    assert state["epoch"] == 2 and state["config"]["train"]["average_last"] == 2 and state["averaged_epochs"] == 1


def test_labels_only_in_dev_are_reported_and_not_learned(tmp_path):
    """A type that occurs in dev but never in training is named in a warning and is not one of the
    model's labels (it could never be learned, only predicted by chance)."""
    from nertool.tag.tagger import Tagger

    dev = tmp_path / "dev.conll"
    dev.write_text((SAMPLE / "dev.conll").read_text(encoding="utf-8") + "Euro B-MISC\nCup I-MISC\nwon O\n\n",
                   encoding="utf-8")
    corpus = load_corpus(SAMPLE / "train.conll", dev)
    assert "B-MISC" in corpus.labels
    r = train(corpus, tiny(1, min_updates=0), tmp_path / "run")
    assert any(w.startswith("MISC occur in dev or test but not in training") for w in r.warnings), r.warnings
    labels = Tagger.load(str(tmp_path / "run")).labels
    assert not any(label.endswith("-MISC") for label in labels) and "B-PER" in labels
