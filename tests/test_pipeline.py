"""Bulk tagging: segmentation, document offsets, JSONL input, many inputs with resumable outputs."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nertool.errors import BadLines, NertoolError
from nertool.inputs import read_documents
from nertool.loading import bundled_models
from nertool.pipeline import plan
from nertool.segment import sentence_spans, sentences

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "nertool.cli", *args], capture_output=True, text=True, env=ENV, timeout=300, **kw)


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
    r = subprocess.run([sys.executable, "-m", "nertool.cli", "tag", str(tiny_model), str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "looks like CoNLL columns" in r.stderr
    p2 = tmp_path / "looks.conll"
    p2.write_text(p.read_text())
    r = cli("tag", str(tiny_model), str(p2), "--format", "conll")  # detected by suffix
    assert r.returncode == 0 and len(r.stdout.split("\n")[0].split()) == 3


def test_many_inputs_killed_and_rerun_give_every_record_once(tiny_model, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(8):
        name = src / ("sub" if i % 2 else "") / f"f{i}.txt"
        name.write_text("".join(f"Anna Berg {i} visited Oslo number {k} .\n\n" for k in range(600)))
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "nertool.cli", "tag", str(tiny_model), str(src), "-o", str(out),
                          "--threads", "1", "--batch-size", "16"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.rglob("*.jsonl")):
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = list(out.rglob("*.jsonl"))
    assert 1 <= len(done) < 8, "the kill must land mid-run"
    r = cli("tag", str(tiny_model), str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "skipping" in r.stderr
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
