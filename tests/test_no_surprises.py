"""Nothing clobbered, nothing silently wrong: the cases of RELIABILITY.md's second table, each of
which failed before its fix."""
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, wait_until
from conftest import run_cli as cli
from typer.testing import CliRunner

from nertool.cli.app import app
from nertool.data.inputs import read_documents
from nertool.fileio import read_lines

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"
runner = CliRunner()
FAST = ["--epochs", "1", "--hidden-size", "8", "--char-hidden", "4", "--layers", "1", "--threads", "1"]


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def train_args(out, *extra):
    return ["train", str(SAMPLE / "train.conll"), "--dev", str(SAMPLE / "dev.conll"), "--out", str(out), *FAST, *extra]


def test_out_that_is_not_empty_is_refused_unless_force(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "notes.txt").write_text("keep me")
    one_line_error(cli(*train_args(out)), "mine", "--force")
    assert (out / "config.json").read_text() == '{"mine": true}'
    r = cli(*train_args(out, "--force"))
    assert r.returncode == 0, r.stderr
    assert (out / "notes.txt").read_text() == "keep me" and (out / "model.safetensors").exists()
    one_line_error(cli(*train_args(out)), "holds a run")  # a run is not replaced without asking


def test_failed_training_into_a_run_keeps_its_metrics(tmp_path):
    out = tmp_path / "run"
    assert cli(*train_args(out)).returncode == 0
    before = (out / "metrics.jsonl").read_text()
    assert before.strip()
    r = cli(*train_args(out, "--force", "--lr", "1e30", "--optimizer", "sgd"))
    one_line_error(r, "diverged")
    assert (out / "metrics.jsonl").read_text() == before  # never truncated before the new run wrote


@pytest.mark.parametrize("lr", ["inf", "nan"])
def test_non_finite_learning_rate_is_refused_before_anything_is_made(tmp_path, lr):
    one_line_error(cli(*train_args(tmp_path / "o", "--lr", lr)), "train.lr", "finite")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("toml, needle", [
    ("[train]\nepochs = 1.5\n", "train.epochs must be an integer"),
    ("[model]\nhidden_size = 16.5\n", "model.hidden_size must be an integer"),
    ('[model]\nlowercase = "false"\n', "model.lowercase must be true or false"),
    ("model = 5\n", "[model]: expected a table"),
    ("[train]\nlr = true\n", "train.lr must be a finite number"),
])
def test_config_values_are_type_checked_naming_file_section_key(tmp_path, toml, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    one_line_error(cli(*train_args(tmp_path / "o", "--config", str(cfg))), "c.toml", needle)
    assert not (tmp_path / "o").exists()


def test_out_that_cannot_be_a_run_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(cli(*train_args(f)), "not a directory")
    one_line_error(cli(*train_args(f / "sub")), "cannot write the run directory")


def test_unknown_encoding_and_bad_batch_size(tiny_model, tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Anna Berg visited Oslo .\n")
    one_line_error(cli("tag", str(tiny_model), str(p), "--encoding", "klingon"), "unknown encoding")
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(SAMPLE / "test.conll"), "--batch-size", "0"])
    assert r.exit_code == 2


def test_model_from_a_future_format_is_refused(tiny_model, tmp_path):
    m = tmp_path / "future"
    shutil.copytree(tiny_model, m)
    cfg = json.loads((m / "config.json").read_text())
    cfg["format_version"] = 99
    (m / "config.json").write_text(json.dumps(cfg))
    p = tmp_path / "a.txt"
    p.write_text("Anna Berg visited Oslo .\n")
    for args in (["tag", str(m), str(p)], ["info", str(m)], ["evaluate", str(m), str(SAMPLE / "test.conll")],
                 ["export", str(m), str(tmp_path / "m.pt")]):
        one_line_error(cli(*args), "format_version 99 is newer")


def test_export_over_the_model_is_refused(tiny_model, tmp_path):
    m = tmp_path / "run"
    shutil.copytree(tiny_model, m)
    weights = (m / "model.safetensors").read_bytes()
    one_line_error(cli("export", str(m), str(m / "model.safetensors")), "would write over the model")
    assert (m / "model.safetensors").read_bytes() == weights


@pytest.mark.slow
def test_sigterm_during_tag_leaves_no_temporary_file(tiny_model, tmp_path):
    src = tmp_path / "big.txt"
    src.write_text("Anna Berg visited Oslo on day 1 . She met Tim Cook .\n\n" * 60000)
    out = tmp_path / "out.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "nertool", "tag", str(tiny_model), str(src), "-o", str(out),
                          "--workers", "1", "--threads", "1"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: list(tmp_path.glob(".out.jsonl.*")), 120), "tagging must have begun writing"
    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 128 + signal.SIGTERM
    assert not list(tmp_path.glob(".out.jsonl.*")) and not out.exists()


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_keeping_the_model(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "nertool", *train_args(out), "--epochs", "500", "--patience", "0"],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=ctrl_c_as_in_a_terminal)
    wait_until((out / "model.safetensors").exists, 120)
    p.send_signal(signal.SIGINT)
    assert p.wait(60) == 130
    assert (out / "model.safetensors").exists()


def ctrl_c_as_in_a_terminal():
    # a suite started in the background (`make test &`) inherits SIGINT ignored, and so would its children
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c(monkeypatch):
    """Ctrl-C raises KeyboardInterrupt in this process, however the suite was started."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_held_until_a_group_of_files_is_written(ctrl_c):
    from nertool.fileio import interrupts_deferred

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_saving_a_model_leaves_every_file_of_the_new_model(tiny_model, tmp_path, monkeypatch, ctrl_c):
    from nertool.store.checkpoint import load_model, read_config, save_model

    bundle = load_model(tiny_model)
    out = tmp_path / "saved"
    shutil.copytree(tiny_model, out)
    (out / "config.json").unlink()
    real_save = type(bundle.words).save

    def save_then_interrupted(self, path):  # Ctrl-C after model.safetensors, before the rest
        signal.raise_signal(signal.SIGINT)
        real_save(self, path)

    monkeypatch.setattr(type(bundle.words), "save", save_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(out, bundle)
    assert read_config(out)["format"] and (out / "README.md").exists()
    load_model(out)



BOM = "\ufeff"


def test_byte_order_marks_and_invisible_lines_read_as_blank(tmp_path, tiny_model):
    part = "EU B-ORG\nrejects O\n\nAnna B-PER\nBerg I-PER\n"
    p = tmp_path / "cat.conll"
    # three files concatenated: a BOM at the start of each part, a BOM-only line, a lone tab, a ZWSP line
    p.write_text(BOM + part + "\n" + BOM + "\n" + BOM + part + "\t\n\u200b\n" + BOM + part, encoding="utf-8")
    lines = read_lines(p)
    assert not any(BOM in l for l in lines)
    from nertool.data.conll import read_conll

    sents = read_conll(p)
    assert len(sents) == 6 and all(BOM not in t for toks, _ in sents for t in toks)
    r = cli("evaluate", str(tiny_model), str(p))
    assert r.returncode == 0, r.stderr
    r = cli("train", str(p), "--dev", str(p), "--out", str(tmp_path / "o"), *FAST)
    assert r.returncode == 0, r.stderr
    txt = tmp_path / "t.txt"
    txt.write_bytes((BOM + "Anna Berg visited Oslo .\n\n" + BOM + "\n" + BOM + "Tim Cook left .\n").encode())
    with txt.open("rb") as f:
        docs = list(read_documents(f, str(txt), "text"))
    assert [d.text for d in docs] == ["Anna Berg visited Oslo .", "Tim Cook left ."]
    assert all(BOM not in t.text for d in docs for s in d.sentences for t in s)


def test_labels_info_and_marginals_speak_the_output_scheme(tiny_model):
    from nertool.tag.tagger import Tagger

    tagger = Tagger.load(str(tiny_model))
    assert tagger.scheme == "IOB2" and tagger.internal == "BIOES"
    assert not any(l[:2] in ("E-", "S-") for l in tagger.labels) and "B-PER" in tagger.labels
    [res] = tagger.tag_sentences([["Anna", "Berg", "visited", "Oslo", "."]], marginals=True)
    for m, tag in zip(res.marginals, res.tags):
        assert set(m) <= set(tagger.labels) and tag in m
        assert all(0.0 <= p <= 1.0 for p in m.values()) and sum(m.values()) == pytest.approx(1.0, abs=1e-4)
    r = runner.invoke(app, ["info", str(tiny_model)])
    assert r.exit_code == 0 and "S-PER" not in r.output and "B-PER" in r.output


def test_version_and_no_dev_warning(tmp_path):
    from nertool import __version__

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"nertool {__version__}"
    r = cli("train", str(SAMPLE / "train.conll"), "--out", str(tmp_path / "o"), *FAST)
    assert r.returncode == 0 and "no --dev set" in r.stderr and "--dev-fraction" in r.stderr


def test_every_saved_model_has_a_model_card(tiny_model):
    card = (tiny_model / "README.md").read_text()
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert card.startswith("# nertool model") and "## Intended use" in card and "## Limits" in card
    assert f"f1 {100 * cfg['scores']['dev']['f1']:.2f}" in card and "PER" in card
    r = runner.invoke(app, ["info", str(tiny_model), "--card"])
    assert r.exit_code == 0 and r.output.strip() == card.strip()


def test_train_help_shows_the_defaults():
    from nertool.config import Config

    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    c = Config()
    assert r.exit_code == 0
    for value in (c.train.epochs, c.train.lr, c.model.num_layers, c.model.hidden_size, c.train.patience):
        assert f"(default: {value})" in r.output, value


def test_tag_usage_line_reads_model_then_inputs():
    for args in (["tag", "--help"], ["tag"]):
        r = runner.invoke(app, args, env={"COLUMNS": "200"})
        usage = next(l for l in r.output.splitlines() if "Usage:" in l)
        assert usage.split("Usage:")[1].split() == ["nertool", "tag", "[OPTIONS]", "[MODEL]", "INPUT..."], usage


def test_resume_checks_corpus_options_and_a_finished_run(tmp_path):
    out = tmp_path / "run"
    assert cli(*train_args(out, "--epochs", "2")).returncode == 0
    resume = ["train", str(SAMPLE / "train.conll"), "--dev", str(SAMPLE / "dev.conll"), "--resume", str(out)]
    one_line_error(cli(*resume), "already ended", "epochs")
    one_line_error(cli(*resume, "--lr", "0.1"), "--lr", "would not be applied")  # --epochs 5 would extend it
    # an interrupted run (state of epoch 1 of 2) resumed with another corpus or dev set
    state = json.loads((out / "train_state.json").read_text())
    state.update(stopped_by=None, epoch=1)
    (out / "train_state.json").write_text(json.dumps(state))
    other = tmp_path / "other.conll"
    other.write_text((SAMPLE / "train.conll").read_text().replace("Oslo", "Bergen"))
    one_line_error(cli("train", str(other), "--dev", str(SAMPLE / "dev.conll"), "--resume", str(out)), "different train set")
    one_line_error(cli("train", str(SAMPLE / "train.conll"), "--dev", str(other), "--resume", str(out)), "different dev set")
    one_line_error(cli("train", str(SAMPLE / "train.conll"), "--resume", str(out)), "no dev set")


def test_train_api_takes_a_datasets_dict_with_classlabel_tags(tmp_path):
    import datasets

    from nertool import Config, Tagger, train
    from nertool.data.conll import read_conll

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})

    def split(name):
        sents = read_conll(SAMPLE / f"{name}.conll")
        return datasets.Dataset.from_dict({"tokens": [t for t, _ in sents], "ner_tags": [[names.index(x) for x in g] for _, g in sents]},
                                          features=feats)

    dd = datasets.DatasetDict({"train": split("train"), "validation": split("dev"), "test": split("test")})
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=8, char_hidden=4, num_layers=1),
                 train=base.train.replace(epochs=1, threads=1))
    result = train(dd, cfg, tmp_path / "m")
    assert result.best_dev_f1 is not None and result.test is not None
    tagger = Tagger.load(str(tmp_path / "m"))
    assert set(tagger.labels) == set(names)


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    pt = tmp_path_factory.mktemp("export") / "m.pt"
    assert cli("export", str(tiny_model), str(pt)).returncode == 0
    return pt


@pytest.mark.parametrize("forge", [{"labels": ["O"]}, {"labels": 5}, {"n_tuned": "x"}, {"n_tuned": 10**9},
                                   {"scheme": "IOB9"}, {"model": {"hidden_size": "big"}}])
def test_exported_file_with_forged_metadata_is_refused(exported, tmp_path, forge):
    import zipfile

    pt = exported
    forged = tmp_path / "forged.pt"
    with zipfile.ZipFile(pt) as src, zipfile.ZipFile(forged, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("extra/nertool.json"):
                meta = json.loads(data)
                meta.update({k: ({**meta[k], **v} if isinstance(v, dict) else v) for k, v in forge.items()})
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    p = tmp_path / "a.txt"
    p.write_text("Anna Berg visited Oslo .\n")
    one_line_error(cli("tag", str(forged), str(p)), "forged.pt")


def test_pretrained_rows_are_stored_compactly_and_compact_shrinks_a_run(tmp_path):
    import torch
    from safetensors.torch import load_file

    from nertool.store.checkpoint import load_model
    from nertool.training.evaluate import predict

    g = torch.Generator().manual_seed(3)
    letters = "abcdefghijklmnop"
    words = ["paris", "oslo", "lima"] + [f"x{a}{b}{c}" for a in letters for b in letters for c in letters[:16]]
    vecs = torch.randn(len(words), 20, generator=g)
    v = tmp_path / "v.txt"
    v.write_text("".join(w + " " + " ".join(f"{x:.6f}" for x in row.tolist()) + "\n" for w, row in zip(words, vecs)))
    run, small = tmp_path / "run", tmp_path / "small"
    r = cli(*train_args(run, "--embeddings", str(v)))
    assert r.returncode == 0, r.stderr
    state = load_file(run / "model.safetensors")
    assert state["emitter.pretrained"].dtype == torch.float16  # 2 bytes a value, not 4
    bundle = load_model(run)
    table = bundle.model.emitter.pretrained
    assert table.dtype == torch.float32 and table.shape == (len(bundle.words), 20)
    assert torch.equal(table[-1], vecs[words.index(bundle.words.ids_to_words()[-1])].half().float())

    r = cli("compact", str(run), str(small), "--keep-words", "100")
    assert r.returncode == 0 and "wrote" in r.stderr, r.stderr
    compacted = load_model(small)
    assert len(compacted.words) == bundle.model.n_tuned + 100
    size = lambda d: sum(f.stat().st_size for f in d.iterdir())  # noqa: E731
    assert size(small) < size(run) / 5
    sents = [line.split()[0] for line in (SAMPLE / "test.conll").read_text().splitlines() if line.strip()]
    assert len(predict(compacted, [sents[:30]])[0]) == 30
    one_line_error(cli("compact", str(run), str(small)), str(small))  # not over an existing model
    one_line_error(cli("compact", str(tmp_path / "nope"), str(tmp_path / "x")), "nope")


def test_a_long_paragraph_is_tagged_in_parts_with_the_same_output(tiny_model):
    import orjson

    from nertool.data.inputs import Document
    from nertool.tag.engines import tag_chunk
    from nertool.tag.options import TagOptions
    from nertool.tag.tagger import Tagger

    text = "\n".join(["Anna Schmidt visited Berlin in May. She met the mayor of Oslo there."] * 40)
    tagger = Tagger.load(str(tiny_model))
    outputs = {}
    for batch in (1, 256):  # parts of 4 sentences, or the paragraph whole
        doc = Document("p.txt", 0, 3, text, None)
        data, tokens = tag_chunk(tagger, [doc], TagOptions(output_format="jsonl", batch_size=batch, scores=False))
        outputs[batch] = [orjson.loads(l) for l in data.splitlines()]
        assert tokens == sum(len(r["tokens"]) for r in outputs[batch])
    assert outputs[1] == outputs[256]
    assert [r["sentence"] for r in outputs[1]] == list(range(len(outputs[1])))
    assert all(text[r["start"]:r["end"]] == r["text"] for r in outputs[1])
    assert [r["line"] for r in outputs[1]] == [3 + k // 2 for k in range(80)]  # two sentences a line
    from nertool.data.inputs import segment_documents

    parts = segment_documents([Document("p.txt", 0, 3, text, None)], "en", part=4)
    first = next(parts)  # tokenised a part at a time, as they are consumed
    assert len(first.sentences) == 4 and first.first_sentence == 0 and next(parts).first_sentence == 4
