"""Bad input, unsafe files and broken models: one clear line, exit code 2, nothing unpickled."""
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ENV
from conftest import run_cli as cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nertool.cli.app import app
from nertool.data.inputs import read_documents
from nertool.errors import BadLines, NertoolError

runner = CliRunner()


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith(lines[0]), r.stderr  # the error is the last word
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_and_empty_files(tmp_path):
    one_line_error(cli("train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")), "nope.txt", "no such file")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    one_line_error(cli("train", str(empty), "--out", str(tmp_path / "o")), "empty.txt", "no sentences")


def test_debug_shows_the_traceback(tmp_path):
    r = cli("--debug", "train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o"))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_latin1_corpus_needs_encoding_option(tmp_path):
    p = tmp_path / "l1.txt"
    p.write_bytes("Jos\xe9 B-PER\nvive O\n".encode("latin-1"))
    one_line_error(cli("train", str(p), "--out", str(tmp_path / "o")), f"{p}:1", "--encoding latin-1")
    r = runner.invoke(app, ["train", str(p), "--out", str(tmp_path / "o"), "--encoding", "latin-1", "--epochs", "1", "--threads", "1"])
    assert r.exit_code == 0, r.output


def test_ill_formed_chunks_repaired_with_warning_or_rejected(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("a O\nb I-PER\n\nc B-LOC\n")
    one_line_error(cli("train", str(p), "--out", str(tmp_path / "o"), "--strict"), "break scheme")
    r = cli("train", str(p), "--out", str(tmp_path / "o2"), "--epochs", "1", "--threads", "1")
    assert r.returncode == 0 and "warning: " in r.stderr and "repaired 1 tags" in r.stderr


def test_evaluate_with_labels_the_model_never_saw(tiny_model, tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("Anna B-PER\nlikes O\nBach B-COMPOSER\n")
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(p), "--json"])
    assert r.exit_code == 0, r.output
    assert '"COMPOSER"' in r.output  # scored as a miss, reported per type


@pytest.mark.parametrize("damage", ["missing_weights", "corrupt_weights", "missing_config", "corrupt_config", "missing_vocab"])
def test_broken_model_directory(tiny_model, tmp_path, damage):
    m = tmp_path / "m"
    shutil.copytree(tiny_model, m)
    target = {"missing_weights": "model.safetensors", "corrupt_weights": "model.safetensors", "missing_config": "config.json",
              "corrupt_config": "config.json", "missing_vocab": "words.json"}[damage]
    if damage.startswith("missing"):
        (m / target).unlink()
    else:
        (m / target).write_bytes(b"\x00garbage{")
    r = cli("tag", str(m), "-", stdin="Tom visited Oslo .\n")
    one_line_error(r, target)


class Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_in_place_of_weights_is_refused_and_not_run(tiny_model, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(tiny_model, m)
    (m / "model.safetensors").write_bytes(pickle.dumps({"weights": Boom()}))
    r = subprocess.run([sys.executable, "-m", "nertool", "tag", str(m), "-"], input="Tom .\n", capture_output=True,
                       text=True, env=ENV, cwd=tmp_path, timeout=300)
    one_line_error(r, "model.safetensors")
    assert not (tmp_path / "PWNED").exists()
    # a torch.save pickle passed as an exported model is refused too, without running it
    torch.save({"x": Boom()}, tmp_path / "evil.pt")
    r = subprocess.run([sys.executable, "-m", "nertool", "tag", str(tmp_path / "evil.pt"), "-"], input="Tom .\n",
                       capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    one_line_error(r, "evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_embeddings_with_a_wrong_dimension(tmp_path):
    v = tmp_path / "v.txt"
    v.write_text("anna 1 2 3\nberg 1 2\n")
    from conftest import SAMPLE

    one_line_error(cli("train", str(SAMPLE / "train.conll"), "--out", str(tmp_path / "o"), "--embeddings", str(v)), f"{v}:2", "expected 3")


def test_stream_with_a_bad_line_stops_or_is_skipped_and_counted(tiny_model, tmp_path):
    p = tmp_path / "in.txt"
    p.write_bytes(b"Tom visited Oslo .\n\nbad \xff line\n\nAnna Berg works for FIFA .\n")
    one_line_error(cli("tag", str(tiny_model), str(p)), f"{p}:3")
    r = cli("tag", str(tiny_model), str(p), "--skip-bad")
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) == 2 and "skipped 1 bad line" in r.stderr and ":3:" in r.stderr


def test_output_file_is_written_atomically(tiny_model, tmp_path):
    p = tmp_path / "in.txt"
    p.write_bytes(b"Tom visited Oslo .\n\xff\n")
    out = tmp_path / "out.jsonl"
    out.write_text("previous content\n")
    one_line_error(cli("tag", str(tiny_model), str(p), "-o", str(out)), ":2:")
    assert out.read_text() == "previous content\n"  # untouched: no half-written file
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".out")] == []


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400), st.sampled_from(["text", "lines", "tokens", "conll", "jsonl"]))
def test_fuzz_raw_input_pipeline_only_raises_our_errors(data, fmt):
    import io

    try:
        for doc in read_documents(io.BytesIO(data), "<fuzz>", fmt, bad=BadLines()):
            for sent in doc.sentences:
                for t in sent:
                    assert doc.text[t.start : t.end] == t.text
    except NertoolError:
        pass


def test_load_state_safely_refuses_pickles(tiny_model, tiny_corpus, tmp_path):
    """A pickle in place of a run's training state is refused when the run is resumed (more epochs
    asked), as one line naming the run, and its payload never runs."""
    from nertool.store import rundir

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run)
    (run / rundir.STATE_TENSORS).write_bytes(pickle.dumps({"opt": Boom()}))
    r = subprocess.run([sys.executable, "-m", "nertool", "train", str(tiny_corpus["train"]), "--dev", str(tiny_corpus["dev"]),
                        "--test", str(tiny_corpus["test"]), "--resume", str(run), "--epochs", "20"],
                       capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    one_line_error(r, str(run), "corrupt training state")
    assert not (tmp_path / "PWNED").exists()
