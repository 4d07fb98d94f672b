"""Issue 36: nothing lost, nothing silent. One training per run directory (a lock that names its
holder and is taken over from a killed process); bulk outputs that never collide, are skipped by
a fingerprint of their input, are never read back as inputs, and leave no stale temporaries."""
from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import SAMPLE, popen_cli, run_cli, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _tag(tiny_model, *args):
    return run_cli("tag", tiny_model, *map(str, args), "--no-scores")


def test_inputs_of_one_name_in_different_folders_keep_apart(tiny_model, tmp_path):
    for d, text in (("a", "Anna visited Oslo ."), ("b", "Berg left Paris .")):
        (tmp_path / "d" / d).mkdir(parents=True)
        (tmp_path / "d" / d / "x.txt").write_text(text + "\n", encoding="utf-8")
    for inputs in ([tmp_path / "d/a/x.txt", tmp_path / "d/b/x.txt"], [f"{tmp_path}/d/**/x.txt"]):
        out = tmp_path / f"out{len(inputs)}"
        r = _tag(tiny_model, *inputs, "-o", out)
        assert r.returncode == 0, r.stderr
        a, b = (json.loads((out / d / "x.jsonl").read_text())["text"] for d in "ab")
        assert (a, b) == ("Anna visited Oslo .", "Berg left Paris .")  # two outputs, none lost


def test_two_inputs_for_one_output_are_refused_before_anything_is_written(tiny_model, tmp_path):
    (tmp_path / "n.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    (tmp_path / "n.conll").write_text("Anna\nvisited\nOslo\n.\n", encoding="utf-8")
    r = _tag(tiny_model, tmp_path / "n.txt", tmp_path / "n.conll", "-o", tmp_path / "out")
    assert r.returncode == 2 and "n.conll" in r.stderr and "n.txt" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "n.jsonl").exists()


def test_a_file_like_output_name_for_several_inputs_is_refused(tiny_model, tmp_path):
    for n in "xy":
        (tmp_path / f"{n}.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    r = _tag(tiny_model, tmp_path / "x.txt", tmp_path / "y.txt", "-o", tmp_path / "combined.jsonl")
    assert r.returncode == 2 and "output directory" in r.stderr and not (tmp_path / "combined.jsonl").exists()


def test_a_changed_input_is_tagged_again_and_outputs_are_never_inputs(tiny_model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    (src / "b.txt").write_text("Berg left Paris .\n", encoding="utf-8")
    out = src / "out"  # the output directory inside the input directory
    assert _tag(tiny_model, src, "-o", out).returncode == 0
    (out / ".a.jsonl.abcd1234.tmp").write_text("half", encoding="utf-8")  # left by a killed run
    (src / "a.txt").write_text("Carl met Dora in Rome .\n", encoding="utf-8")  # same name, new text
    os.utime(src / "b.txt")  # touched, not changed
    r = _tag(tiny_model, src, "-o", out)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "a.jsonl").read_text())["text"] == "Carl met Dora in Rome ."
    assert "skipping 1 input(s)" in r.stderr  # b: same bytes
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jsonl")) == ["a.jsonl", "b.jsonl"]
    assert not list(out.glob("*.tmp"))
    assert "tagged 1 input(s)" in r.stderr


def test_a_second_bulk_run_into_a_busy_output_directory_is_refused(tiny_model, tmp_path):
    (tmp_path / "a.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    with locked(tmp_path / "out", "output directory"):
        r = _tag(tiny_model, tmp_path / "a.txt", tmp_path / "b.txt", "-o", tmp_path / "out")
    assert r.returncode == 2 and f"in use by process {os.getpid()}" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--hidden-size", "100000"], "model.hidden_size must be at most 4,096"),
    (["--layers", "1000"], "model.num_layers must be at most 16"),
    (["--seed", str(2**63)], "train.seed must be at most"),
    (["--seed", "-1"], "train.seed must be a non-negative number"),
    (["--batch-size", str(10**9)], "train.batch_size must be at most"),
])
def test_absurd_sizes_are_refused_in_one_line(tmp_path, args, needle):
    r = run_cli("train", SAMPLE / "train.conll", "--out", tmp_path / "run", *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


def test_the_front_door_says_what_went_wrong(tmp_path):
    (tmp_path / "x.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    r = run_cli("tag", "en-fats", tmp_path / "x.txt")
    assert r.returncode == 2 and "did you mean en-fast?" in r.stderr
    r = run_cli("tag", "en")
    assert r.returncode == 2 and "en is a model: give the files to tag after it" in r.stderr
    (tmp_path / "model").symlink_to(tmp_path / "gone")
    r = run_cli("tag", tmp_path / "model", tmp_path / "x.txt")
    assert r.returncode == 2 and "a broken symbolic link" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""  # nothing tagged with a model the user did not name


def test_strings_where_token_lists_belong_are_refused_and_a_tagger_says_what_it_is(tiny_model):
    from nertool import Tagger

    tagger = Tagger.load(str(tiny_model))
    with pytest.raises(NertoolError, match="sentence 1 is a string"):
        tagger.tag_tokens(["EU rejects"])
    with pytest.raises(NertoolError, match="one string"):
        list(tagger.pipe("a string"))
    assert repr(tagger).startswith(f"Tagger({str(tiny_model)!r}, scheme=") and "labels=" in repr(tagger)


@pytest.mark.parametrize("record,needle", [
    ('{"id": 1e400, "text": "Berg ."}', "1e400 is out of range"),
    ('{"id": NaN, "text": "Berg ."}', "NaN is not a JSON number"),
    ('{"id": 18446744073709551616, "text": "Berg ."}', "too large for JSON output"),
    ('{"id": 1, "text": "Berg \\ud800 ."}', "cannot be written back as JSON"),
])
def test_jsonl_values_that_cannot_come_back_out_are_named_not_nulled(tmp_path, record, needle):
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "Anna ."}\n' + record + "\n", encoding="utf-8")
    r = run_cli("tag", "en-fast", tmp_path / "in.jsonl", "--no-scores")
    assert r.returncode == 2 and "in.jsonl:2:" in r.stderr, r.stderr
    assert needle in r.stderr.replace("\n", "") and "Traceback" not in r.stderr


def test_jsonl_extra_fields_are_carried_to_the_jsonl_output(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": "a1", "text": "Anna visited Oslo .", "source": "web", "n": 3}\n',
                                       encoding="utf-8")
    r = run_cli("tag", "en-fast", tmp_path / "in.jsonl", "--no-scores")
    rec = json.loads(r.stdout.splitlines()[0])
    assert r.returncode == 0 and rec["id"] == "a1" and rec["meta"] == {"source": "web", "n": 3}


def test_conll_output_of_a_spaced_token_reads_back(tmp_path):
    from nertool.data.conll import read_conll

    (tmp_path / "in.conll").write_text("New York\tNNP\nis\tVBZ\nbig\tJJ\n", encoding="utf-8")
    r = run_cli("tag", "en-fast", tmp_path / "in.conll", "--format", "conll", "-o", tmp_path / "out.conll")
    assert r.returncode == 0, r.stderr
    (toks, tags), = read_conll(tmp_path / "out.conll")
    assert toks == ["New York", "is", "big"] and len(tags) == 3


def test_corpora_piped_is_tab_separated_and_whole():
    r = run_cli("corpora")
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    assert r.returncode == 0 and lines[0][:2] == ["name", "hub"]
    assert ["conll2003", "eriktks/conll2003"] == lines[1][:2] and all(len(row) == 6 for row in lines)


@pytest.mark.parametrize("key,value,needle", [("scheme", "BIOX", "scheme must be IOB1, IOB2, BIOES or none"),
                                              ("members", 10**12, "members must be an integer from 1 to 64")])
def test_an_edited_model_config_is_refused_in_one_line(tiny_model, tmp_path, key, value, needle):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    config[key] = value
    (model / "config.json").write_text(json.dumps(config))
    r = run_cli("tag", model, "-", stdin="Anna visited Oslo .\n")
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_resume_without_the_model_file_is_one_line(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", SAMPLE / "train.conll", "--out", out, "--epochs", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    (out / "model.safetensors").unlink()
    r = run_cli("train", SAMPLE / "train.conll", "--resume", out, "--epochs", "2")
    assert r.returncode == 2 and "model.safetensors is missing" in r.stderr and "Traceback" not in r.stderr


def test_unwritable_full_and_device_outputs(tmp_path):
    (tmp_path / "x.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    r = run_cli("tag", "en-fast", tmp_path / "x.txt", "-o", "/proc/nertool-test.jsonl")
    assert r.returncode == 2 and "/proc/nertool-test.jsonl" in r.stderr and "Traceback" not in r.stderr
    if os.path.exists("/dev/full"):
        r = run_cli("tag", "en-fast", tmp_path / "x.txt", "-o", "/dev/full")
        assert r.returncode == 2 and "/dev/full: No space left on device" in r.stderr and "Traceback" not in r.stderr
        assert not os.path.isfile("/dev/full")  # written to, never renamed over
    r = run_cli("tag", "en-fast", tmp_path / "x.txt", "-o", "/dev/null")
    assert r.returncode == 0 and not os.path.isfile("/dev/null")


def test_nproc_with_a_bad_corpus_is_one_line_before_torchrun(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Anna B-PER\nBerg\n", encoding="utf-8")
    r = run_cli("train", bad, "--out", tmp_path / "run", "--nproc", "2")
    assert r.returncode == 2 and "bad.conll:2" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "torch.distributed" not in r.stderr and "OMP_NUM_THREADS" not in r.stderr


def test_offsets_of_a_crlf_file_index_the_files_own_text(tiny_model, tmp_path):
    raw = "Anna Berg met Bo in Paris.\r\nThey left at noon.\r\n\r\nA second paragraph here.\r\n"
    src = tmp_path / "crlf.txt"
    src.write_bytes(raw.encode("utf-8"))
    paragraphs = raw.split("\r\n\r\n")
    r = run_cli("tag", tiny_model, src, "--format", "docs")
    assert r.returncode == 0, r.stderr
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["text"] for d in docs] == [p.removesuffix("\r\n") for p in paragraphs]
    assert "\r\n" in docs[0]["text"]
    for d in docs:
        assert all(d["text"][t["start"]:t["end"]] == t["text"] for t in d["tokens"])
    # the sentence records' offsets too: the second sentence starts after "\r\n"
    r = run_cli("tag", tiny_model, src)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[1]["start"] == raw.index("They") and rows[1]["offsets"][0] == [raw.index("They"), raw.index("They") + 4]


def test_english_clitics_are_split_as_conll_writes_them_and_other_languages_keep_theirs():
    from nertool import Tagger
    from nertool.data.text import tokenize

    text = "Toyota's chief doesn't say they're in O'Neill's rock'n'roll band."
    words = [t.text for t in tokenize(text)]
    assert words[:2] == ["Toyota", "'s"] and ["does", "n't"] == words[3:5] and ["they", "'re"] == words[6:8]
    assert ["O'Neill", "'s", "rock'n'roll"] == words[9:12]
    assert all(text[t.start:t.end] == t.text for t in tokenize(text))
    assert [t.text for t in tokenize("de programma's van z'n collega's", lang="nl")] == \
        ["de", "programma's", "van", "z'n", "collega's"]
    spans = Tagger.load("en-fast")("Toyota's chief met EU officials in Berlin's centre.").spans
    assert [(s.text, s.label) for s in spans] == [("Toyota", "ORG"), ("EU", "ORG"), ("Berlin", "LOC")]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aNtsrdlvmIS'’- .4\u00e9\u0301\n")), max_size=40))
def test_the_clitic_split_equals_a_second_split_over_every_token(text):
    from tokenizers import Regex, pre_tokenizers

    from nertool.data.text import ENGLISH_CLITICS, TOKEN_PATTERN, tokenize

    two_pass = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated"),
                                        pre_tokenizers.Split(Regex(ENGLISH_CLITICS), behavior="isolated")])
    expected = [(w, a, b) for w, (a, b) in two_pass.pre_tokenize_str(text) if w and not w.isspace()]
    assert [tuple(t) for t in tokenize(text)] == expected


@pytest.mark.parametrize("extra", [[], ["--doc-context", "1"], ["--workers", "2"]])
def test_a_trailing_docstart_survives_the_conll_output(tiny_model, tmp_path, extra):
    src = tmp_path / "in.conll"
    src.write_text("-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n\n-DOCSTART- -X- O\n\n", encoding="utf-8")
    r = run_cli("tag", tiny_model, src, "--format", "conll", "-o", tmp_path / "out.conll", *extra)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "out.conll").read_text(encoding="utf-8").splitlines()
    assert [l.split()[0] for l in lines if l] == ["-DOCSTART-", "EU", "rejects", "-DOCSTART-"]
    r = run_cli("tag", tiny_model, src, "--format", "docs")
    assert len(r.stdout.splitlines()) == 1  # no empty document for the trailing line


def test_the_training_bar_agrees_with_the_epoch_line_and_never_passes_the_last_epoch():
    import io

    from rich.console import Console

    from nertool.cli.train import RichReporter

    rep = RichReporter(Console(file=io.StringIO(), width=120))
    rep.start(epochs=2, steps_per_epoch=2)
    fields = lambda: rep.progress.tasks[0].fields  # noqa: E731
    assert fields()["loss"] == "-"
    for epoch in (1, 2):
        rep.step(epoch, 4.0, 32)
        rep.step(epoch, 1.0, 2)  # a short last batch: the epoch's mean is weighted by sentences
        assert fields()["loss"] == f"{(4.0 * 32 + 1.0 * 2) / 34:.4f}"
        rep.epoch_end({"epoch": epoch, "loss": (4.0 * 32 + 1.0 * 2) / 34, "epoch_seconds": 1.0})
        assert fields()["loss"] == "-" and fields()["epoch"] <= 2
    rep.stop()


@pytest.mark.parametrize("args, needle", [
    (["tag"], "Missing argument"), (["bogus"], "No such command 'bogus'"),
    (["tag", "en-fast", "x.txt", "--nbest", "abc"], "Invalid value for '--nbest'"),
    (["tag", "--nbst", "3", "x.txt"], "No such option: --nbst"),
])
def test_usage_errors_are_one_line_with_exit_code_2(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and needle in r.stderr, r.stderr
    assert "--help" in r.stderr and "╭" not in r.stderr


def test_training_on_raw_text_says_it_is_raw_text(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("Anna went to Paris.\nBo stayed home today.\n", encoding="utf-8")
    r = run_cli("train", src, "--out", tmp_path / "run")
    assert r.returncode == 2 and "notes.txt:1: this looks like raw text, not CoNLL columns" in r.stderr, r.stderr
    assert "--scheme none" not in r.stderr


def test_a_folders_files_of_other_suffixes_are_named_not_skipped_silently(tiny_model, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_text("Anna met Bo.\n", encoding="utf-8")
    (d / "b.md").write_text("# Notes\nAnna met Bo.\n", encoding="utf-8")
    (d / ".hidden").write_text("x\n", encoding="utf-8")
    r = run_cli("tag", tiny_model, d, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "left out 1 file(s) of other suffixes (b.md)" in r.stderr and ".hidden" not in r.stderr


def test_a_taggers_threads_apply_to_its_calls_not_to_the_process(tiny_model):
    import torch

    from nertool import Tagger

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    tagger = Tagger.load(str(tiny_model), threads=want)
    assert torch.get_num_threads() == before
    seen = []
    decode = tagger.decoder.decode
    tagger.decoder.decode = lambda *a, **k: (seen.append(torch.get_num_threads()), decode(*a, **k))[1]
    tagger.tag_tokens([["Anna", "met", "Bo", "."]])
    assert seen == [want] and torch.get_num_threads() == before


def test_an_exported_files_labels_are_distinct(tiny_model, tmp_path):
    import torch

    r = run_cli("export", tiny_model, tmp_path / "m.pt")
    assert r.returncode == 0, r.stderr
    m = torch.jit.load(str(tmp_path / "m.pt"))
    assert len(m.labels) == len(set(m.labels)) and "O" in m.labels
    assert set(m.tag_of) == set(m.labels) and len(m.tag_of) > len(m.labels)  # BIOES inside: repeats there
    assert all(t in m.labels for t in m.tag([["Anna", "met", "Bo", "."]])[0])


def _children(pid: int) -> list[int]:
    import pathlib

    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_busy_with_one_huge_paragraph_stop_with_their_parent(tiny_model, tmp_path, sig):
    import time

    src = tmp_path / "one.txt"
    src.write_text("Anna Berg visited Oslo on day 1 . She met Tim Cook . " * 150_000 + "\n", encoding="utf-8")
    p = popen_cli("tag", tiny_model, src, "-o", tmp_path / "out.jsonl", "--workers", "2")
    try:
        assert wait_until(lambda: len(_children(p.pid)) >= 2, 60), "the workers must have started"
        workers = _children(p.pid)
        time.sleep(4)  # a worker is now deep in the one 8 MB chunk
        t0 = time.monotonic()
        p.send_signal(sig)
        p.wait(60)
        assert time.monotonic() - t0 < 10
        assert wait_until(lambda: not any(_alive(w) for w in workers), 10), "no worker outlives its run"
        assert p.returncode == (128 + sig if sig == signal.SIGTERM else -sig)
    finally:
        p.kill()


def test_a_model_retrained_in_place_tags_every_input_again(tiny_model, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        (src / f"{name}.txt").write_text("Anna visited Oslo .\n", encoding="utf-8")
    assert _tag(model, src, "-o", tmp_path / "out").returncode == 0
    r = _tag(model, src, "-o", tmp_path / "out")
    assert "skipping 2 input(s)" in r.stderr  # nothing changed
    weights = next(model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # the same path, written again (a retrained model)
    r = _tag(model, src, "-o", tmp_path / "out")
    assert r.returncode == 0 and "skipping" not in r.stderr and "tagged 2 input(s)" in r.stderr, r.stderr


@pytest.mark.parametrize("window", [40, 97, 300, 5000])
def test_a_long_text_split_a_window_at_a_time_gives_the_same_sentences(window):
    from nertool.data.segment import iter_sentence_spans, sentence_spans

    text = ("Dr. Anna Berg visited Oslo on Monday. She met Tim Cook at 3.30 p.m. there! Did the U.S. "
            "delegation come? Yes.  A sentence much longer than the smallest windows, running on and on "
            "without a full stop for quite a while before it ends. ") * 7
    assert list(iter_sentence_spans(text, window=window)) == sentence_spans(text)


def test_a_long_paragraph_in_parts_keeps_every_sentence_in_order():
    import io

    from nertool.data.inputs import read_documents, segment_documents

    text = "Anna Berg visited Oslo on Monday . She met Tim Cook there . " * 3000  # one line, 6,000 sentences
    docs = list(segment_documents(read_documents(io.BytesIO(text.encode()), "x.txt", "text", lang=None), "en", part=1024))
    assert [d.first_sentence for d in docs] == list(range(0, 6000, 1024))
    words = [t.text for d in docs for s in d.sentences for t in s]
    assert words == text.split() and all(d.text is docs[0].text for d in docs)


def test_a_local_folder_named_like_a_bundled_model_does_not_shadow_it(tmp_path):
    (tmp_path / "en-fast").mkdir()  # a folder of texts, not a model
    (tmp_path / "en-fast" / "b.txt").write_text("Bo met Anna.\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("Anna went to Paris.\n", encoding="utf-8")
    r = run_cli("tag", "en-fast", "a.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["path"] for line in r.stdout.splitlines()] == ["a.txt"]  # tagged with the model
    assert r.stderr.count("the bundled model; the local folder en-fast holds no model (write ./en-fast") == 1
    r = run_cli("tag", "en-fast", "./en-fast", cwd=tmp_path)
    assert r.returncode == 0 and [json.loads(line)["path"] for line in r.stdout.splitlines()] == ["en-fast/b.txt"]


def test_an_exported_file_keeps_a_float16_pretrained_table_in_float16(tmp_path):
    import torch

    from nertool import Tagger
    from nertool.store.export import export
    from nertool.store.loading import load

    out = export(load("en-fast"), tmp_path / "m.pt")
    m = torch.jit.load(str(out))
    assert m.emitter.pretrained.dtype == torch.float16
    assert out.stat().st_size < 55e6  # 79.9 MB with the table in float32
    sents = [["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."], ["Peter", "Blackburn"]]
    eager, exported = Tagger.load("en-fast").tag_sentences(sents), Tagger.load(str(out)).tag_sentences(sents)
    assert [r.tags for r in eager] == [r.tags for r in exported]
    assert [r.token_scores for r in eager] == [r.token_scores for r in exported]


def test_export_to_a_suffix_it_does_not_write_is_refused(tiny_model, tmp_path):
    r = run_cli("export", tiny_model, tmp_path / "m.tflite")
    assert r.returncode == 2 and "m.tflite: nertool exports TorchScript (.pt) and ONNX (.onnx) files" in r.stderr
    assert not (tmp_path / "m.tflite").exists()


def test_a_training_message_with_brackets_is_printed_as_written():
    import io

    from rich.console import Console

    from nertool.cli.train import RichReporter

    buf = io.StringIO()
    RichReporter(Console(file=buf, width=200)).message('note: ([train] small_corpus = "off" keeps the plain defaults)')
    assert '([train] small_corpus = "off"' in buf.getvalue()
