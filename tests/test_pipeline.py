"""Bulk tagging: segmentation, document offsets, JSONL input, many inputs with resumable outputs."""
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ENV, wait_until
from conftest import run_cli as cli
from hypothesis import given, settings
from hypothesis import strategies as st

from nertool.data.inputs import read_documents
from nertool.data.segment import sentence_spans, sentences
from nertool.errors import BadLines, NertoolError
from nertool.store.loading import bundled_models
from nertool.tag.bulk import plan

ROOT = Path(__file__).resolve().parents[1]


def test_segmentation_test_set_accuracy():
    rows = [json.loads(l) for l in (ROOT / "corpora" / "segmentation" / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(r["lang"] == "en" for r in rows) >= 100
    exact = 0
    for r in rows:
        text = " ".join(r["sentences"])
        exact += [text[a:b] for a, b in sentence_spans(text, r["lang"])] == r["sentences"]
    assert exact / len(rows) >= 0.9, exact  # sentencex: 114 of 123 (BENCHMARKS.md)


def test_titles_abbreviations_keep_sentences_and_tokens_whole():
    text = "Mr. Smith met Dr. Jones in St. Louis. He paid $4.99 for Apple Inc. shares on Jan. 5."
    sents = sentences(text)
    assert len(sents) == 2
    assert ["Mr.", "Smith", "met", "Dr.", "Jones", "in", "St.", "Louis", "."] == [t.text for t in sents[0]]
    assert "Inc." in [t.text for t in sents[1]] and sents[1][-1].text == "."


@pytest.mark.skipif("en" not in bundled_models(), reason="needs the bundled model")
def test_st_louis_is_one_span_with_the_bundled_model(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Mr. Smith met Dr. Jones in St. Louis. They talked.\n")
    r = cli("tag", "en", str(p))
    assert r.returncode == 0, r.stderr
    spans = [s for l in r.stdout.splitlines() for s in json.loads(l)["spans"]]
    assert {"text": "St. Louis", "label": "LOC"}.items() <= next(s for s in spans if "Louis" in s["text"]).items()


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=4))
def test_document_offsets_round_trip_any_unicode(texts):
    data = "".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)).encode()
    docs = list(read_documents(io.BytesIO(data), "x.jsonl", "jsonl"))
    assert [d.text for d in docs] == texts and [d.id for d in docs] == list(range(len(texts)))
    for d in docs:
        for sent in d.sentences:
            for t in sent:
                assert d.text[t.start : t.end] == t.text and t.text.strip()
    raw = "\n\n".join(t.replace("\r", " ") for t in texts).encode()
    for d in read_documents(io.BytesIO(raw), "x.txt", "text", bad=BadLines(skip=True)):
        for sent in d.sentences:
            for t in sent:
                assert d.text[t.start : t.end] == t.text


def test_jsonl_input_carries_id_and_fields_and_docs_output(tiny_model, tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps({"id": "a1", "text": "Anna Berg visited Oslo . She left .", "source": "web"}) + "\n")
    r = cli("tag", str(tiny_model), str(p), "--format", "docs")
    assert r.returncode == 0, r.stderr
    [rec] = [json.loads(l) for l in r.stdout.splitlines()]
    assert rec["id"] == "a1" and rec["source"] == "web" and rec["text"].startswith("Anna")
    for s in rec["spans"]:
        assert rec["text"][s["start"] : s["end"]] == s["text"]
    r = cli("tag", str(tiny_model), str(p))
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    assert [x["sentence"] for x in recs] == [0, 1] and all(x["id"] == "a1" for x in recs)
    assert recs[1]["start"] > 0 and rec["text"][recs[1]["start"] : recs[1]["end"]] == recs[1]["text"]


def test_output_over_input_is_refused(tmp_path):
    p = tmp_path / "same.txt"
    p.write_text("x\n")
    with pytest.raises(NertoolError, match="replace this input"):
        plan([str(p)], p, "jsonl")


def test_conll_looking_text_warns(tiny_model, tmp_path):
    p = tmp_path / "looks.txt"
    p.write_text("EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n")
    r = subprocess.run([sys.executable, "-m", "nertool", "tag", str(tiny_model), str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "looks like CoNLL columns" in r.stderr
    p2 = tmp_path / "looks.conll"
    p2.write_text(p.read_text())
    r = cli("tag", str(tiny_model), str(p2), "--format", "conll")  # detected by suffix
    assert r.returncode == 0 and len(r.stdout.split("\n")[0].split()) == 3


@pytest.mark.slow
def test_many_inputs_killed_and_rerun_give_every_record_once(tiny_model, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(8):
        name = src / ("sub" if i % 2 else "") / f"f{i}.txt"
        name.write_text("".join(f"Anna Berg {i} visited Oslo number {k} .\n\n" for k in range(600)))
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "nertool", "tag", str(tiny_model), str(src), "-o", str(out),
                          "--threads", "1", "--batch-size", "16"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: list(out.rglob("*.jsonl")), 240, interval=0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = list(out.rglob("*.jsonl"))
    assert 1 <= len(done) < 8, "the kill must land mid-run"
    r = cli("tag", str(tiny_model), str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "tagged" in r.stderr  # a finished output the killed run had no time to record is redone whole
    outputs = sorted(out.rglob("*.jsonl"))
    assert [o.relative_to(out) for o in outputs] == sorted(f.relative_to(src).with_suffix(".jsonl") for f in src.rglob("*.txt"))
    for o in outputs:
        recs = [json.loads(l) for l in o.read_text().splitlines()]
        assert [r["doc"] for r in recs] == list(range(600))
    # a bad file among good ones: one line naming file and line, finished outputs complete
    (src / "zbad.txt").write_bytes(b"ok\n\xff\xfe\n")
    r = cli("tag", str(tiny_model), str(src), "-o", str(tmp_path / "out2"))
    assert r.returncode == 2 and "zbad.txt:2" in r.stderr
    assert len(list((tmp_path / "out2").rglob("*.jsonl"))) == 8


def _paragraphs(n: int, seed: int = 0) -> str:
    names = ["Anna Berg", "Oslo", "Tim Cook", "Paris", "Otto Lind", "Bergen", "EU", "Maria Holm"]
    return "".join(f"{names[(i + seed) % 8]} met {names[(3 * i + 1) % 8]} in {names[(5 * i + 2) % 8]} on day {i} . "
                   f"It was number {i * 7 % 13} .\n\n" for i in range(n))


@pytest.mark.slow
def test_worker_processes_keep_input_order_and_equal_one_process(tiny_model, tmp_path):
    from nertool.tag.engines import InProcess, WorkerPool
    from nertool.tag.options import TagOptions
    from nertool.tag.tagger import Tagger

    src = tmp_path / "in.txt"
    src.write_text(_paragraphs(400))
    opts = TagOptions(input_format="text")
    with InProcess(Tagger.load(str(tiny_model), threads=1), opts, chunk_chars=600) as engine:
        one = b"".join(data for _, data, _, _ in engine.run([str(src)], BadLines()) if data is not None)
    with WorkerPool(str(tiny_model), opts, workers=2, window=3, chunk_chars=600) as engine:
        rows = list(engine.run([str(src)], BadLines()))
    assert rows[-1] == (0, None, 0, 0)  # the input's end is marked
    two = b"".join(data for _, data, _, _ in rows[:-1])
    seen = [pos for _, _, _, pos in rows[:-1]]
    recs = [json.loads(l) for l in two.splitlines()]
    assert [(r["doc"], r["sentence"]) for r in recs] == [(d, k) for d in range(400) for k in range(2)]
    assert len(seen) > 20 and seen == sorted(seen)  # many chunks, progress in input order
    one_recs = [json.loads(l) for l in one.splitlines()]
    assert [r["tags"] for r in recs] == [r["tags"] for r in one_recs]
    for a, b in zip(recs, one_recs):
        assert [s["score"] for s in a["spans"]] == pytest.approx([s["score"] for s in b["spans"]], abs=1e-5)
        assert {**a, "spans": None} == {**b, "spans": None}


@pytest.mark.slow
def test_cli_workers_match_one_process_and_bad_line_names_file(tiny_model, tmp_path):
    src = tmp_path / "big.txt"
    src.write_text(_paragraphs(7000))  # more than one chunk
    r1 = cli("tag", str(tiny_model), str(src), "--workers", "1", "--threads", "1", "--no-scores")
    r2 = cli("tag", str(tiny_model), str(src), "--workers", "2", "--no-scores")
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr
    assert r1.stdout == r2.stdout and len(r2.stdout.splitlines()) == 14000
    bad = tmp_path / "bad.txt"
    bad.write_bytes(src.read_bytes() + b"ok\n\xff\n")
    r = cli("tag", str(tiny_model), str(bad), "--workers", "2", "-o", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and f"bad.txt:{7000 * 2 + 2}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.jsonl").exists() and not list(tmp_path.glob(".o.jsonl*"))


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.slow
def test_workers_end_when_the_command_is_killed(tiny_model, tmp_path):
    src = tmp_path / "big.txt"
    src.write_text(_paragraphs(30000))
    p = subprocess.Popen([sys.executable, "-m", "nertool", "tag", str(tiny_model), str(src), "-o",
                          str(tmp_path / "out.jsonl"), "--workers", "2"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []

    def workers_started():
        kids[:] = [k for k in _children(p.pid) if b"multiprocessing" in Path(f"/proc/{k}/cmdline").read_bytes()]
        return len(kids) >= 2

    assert wait_until(workers_started, 120, interval=0.1), "the workers must have started"
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert wait_until(lambda: not any(_running(k) for k in kids), 30, interval=0.2)
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_ray_local_mode_records_equal_the_cli(tiny_model, tmp_path):
    pytest.importorskip("ray.data")
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text(_paragraphs(300))
    (src / "b.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "text": f"Anna Berg met Tim Cook in Oslo . Day {i} ."}) + "\n"
                                         for i in range(50)))
    files = [str(src / "a.txt"), str(src / "b.jsonl")]
    r = cli("tag", str(tiny_model), *files, "--workers", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    expected = [json.loads(l) for l in r.stdout.splitlines()]
    out = tmp_path / "out"
    r = cli("tag", str(tiny_model), *files, "--ray", "local", "--workers", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(f.name for f in out.glob("*.jsonl")) == ["a.jsonl", "b.jsonl"]  # one output per input, as in-process
    got = [json.loads(l) for name in ("a.jsonl", "b.jsonl") for l in (out / name).read_text().splitlines()]
    key = lambda rec: (rec["path"], rec["doc"], rec["sentence"])  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, expected)) and len(got) == 700
    by_key = {key(x): x for x in expected}
    for rec in got:
        want = by_key[key(rec)]
        assert {**rec, "spans": None} == {**want, "spans": None}
        assert [s["score"] for s in rec["spans"]] == pytest.approx([s["score"] for s in want["spans"]], abs=1e-5)
    assert [(x["path"], x["doc"], x["sentence"]) for x in got] == [key(x) for x in expected]  # input order
    (out / "b.jsonl").unlink()  # a rerun skips the finished input and redoes the other
    r = cli("tag", str(tiny_model), *files, "--ray", "local", "--workers", "1", "-o", str(out))
    assert r.returncode == 0 and "skipping 1 input(s)" in r.stderr, r.stderr
    assert [json.loads(l) for l in (out / "b.jsonl").read_text().splitlines()] == got[600:]
