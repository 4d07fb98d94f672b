"""Issue 39, second part: the annotation tools' formats. Every format round-trips (read -> write
-> read gives the same spans), each reads its tool's own shape, and a span off the token
boundaries is named with its file and line, never moved."""
from __future__ import annotations

import json

import pytest
from conftest import run_cli

from nertool.data.annotations import FORMATS, Annotated, guess_format, read, write
from nertool.data.text import tokenize
from nertool.errors import DataFormatError

TEXTS = [("Angela Merkel met Emmanuel Macron in Paris.", [(0, 13, "PER"), (18, 33, "PER"), (37, 42, "LOC")]),
         ("EU rejects German call.", [(0, 2, "ORG"), (11, 17, "MISC")]),
         ("Nothing to see here.", [])]


def records() -> list[Annotated]:
    return [Annotated(t, tokenize(t), spans) for t, spans in TEXTS]


def spans_of(recs) -> list[list[tuple[str, str]]]:
    return [[(r.text[a:b], label) for a, b, label in r.spans] for r in recs]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips(tmp_path, fmt):
    first = tmp_path / f"a.{fmt}"
    write(first, records(), fmt)
    back, skipped = read(first, fmt)
    # binary answers: a task a span, so a text without spans has no task (nothing of it is known)
    texts = [(t, s) for t, s in TEXTS if s or fmt != "prodigy-binary"]
    assert skipped == 0 and spans_of(back) == [x for x in spans_of(records()) if x or fmt != "prodigy-binary"]
    if fmt != "conll":  # the tools' formats keep the text as it was
        assert [r.text for r in back] == [t for t, _ in texts] and [r.spans for r in back] == [s for _, s in texts]
    assert guess_format(first) == {"doccano": "doccano", "prodigy-binary": "prodigy"}.get(fmt, fmt)
    again = tmp_path / f"b.{fmt}"
    write(again, back, fmt)
    assert again.read_bytes() == first.read_bytes()


def test_each_tools_own_shape_is_read(tmp_path):
    text = "Anna Berg lives in Oslo."
    shapes = {
        "prodigy": [{"text": text, "spans": [{"start": 0, "end": 9, "label": "PER"}], "answer": "accept"},
                    {"text": text, "spans": [], "answer": "reject"}],
        "doccano": [{"id": 1, "text": text, "entities": [{"id": 5, "start_offset": 19, "end_offset": 23, "label": "LOC"}]}],
        "argilla": [{"text": text, "tokens": ["Anna", "Berg", "lives", "in", "Oslo", "."],
                     "annotation": [["PER", 0, 9], ["LOC", 19, 23]], "prediction": [["PER", 0, 4, 0.6]]}],
    }
    for fmt, recs in shapes.items():
        path = tmp_path / f"{fmt}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
        got, skipped = read(path)
        assert spans_of(got)[0] and skipped == (1 if fmt == "prodigy" else 0), fmt
    ls = [{"id": 1, "data": {"text": text}, "annotations": [{"was_cancelled": False, "result": [
        {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start": 0, "end": 9, "text": "Anna Berg", "labels": ["PER"]}}]}],
           "predictions": [{"result": [], "score": 0.5}]},
          {"id": 2, "data": {"text": "Bo left."}, "predictions": [{"result": [
              {"type": "labels", "value": {"start": 0, "end": 2, "labels": ["PER"]}, "score": 0.9}]}]}]
    (tmp_path / "ls.json").write_text(json.dumps(ls), encoding="utf-8")
    got, _ = read(tmp_path / "ls.json")
    assert spans_of(got) == [[("Anna Berg", "PER")], [("Bo", "PER")]]


def test_a_span_off_the_token_boundaries_is_named_with_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "Anna Berg", "label": [[0, 9, "PER"]]}) + "\n"
                    + json.dumps({"text": "Anna Berg", "label": [[0, 7, "PER"]]}) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"d.jsonl:2: span \[0, 7\) 'Anna Be' \(PER\) does not fall on token boundaries"):
        read(path, "doccano")
    r = run_cli("convert", path, tmp_path / "out.conll")
    assert r.returncode == 2 and "d.jsonl:2:" in r.stderr and r.stderr.count("\n") == 1 and not (tmp_path / "out.conll").exists()


def test_convert_from_label_studio_to_conll(tmp_path):
    ls = tmp_path / "export.json"
    write(ls, records() * 4, "labelstudio")
    r = run_cli("convert", ls, tmp_path / "train.conll")
    assert r.returncode == 0 and "converted 12 record(s), 20 span(s)" in r.stderr, r.stderr
    lines = (tmp_path / "train.conll").read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["Angela B-PER", "Merkel I-PER", "met O"]


@pytest.mark.parametrize("fmt", ["prodigy", "doccano", "labelstudio", "argilla"])
def test_train_reads_each_tools_export_directly(tmp_path, fmt):
    from nertool.config import DataConfig
    from nertool.data.conll import load_corpus

    path = tmp_path / f"train.{'json' if fmt == 'labelstudio' else 'jsonl'}"
    write(path, records() * 3, fmt)
    for given in ("auto", fmt):
        corpus = load_corpus(path, data=DataConfig(format=given))
        toks, tags = corpus.sentences("train")[0]
        assert toks[:3] == ["Angela", "Merkel", "met"] and tags[:3] == ["B-PER", "I-PER", "O"]
    r = run_cli("train", path, "--epochs", "1", "--out", tmp_path / "run", "--threads", "1")
    assert r.returncode == 0, r.stderr


def test_a_conll_file_starting_with_a_bracket_is_still_conll(tmp_path):
    from nertool.data.conll import load_corpus

    path = tmp_path / "b.conll"
    path.write_text("[ ( O\nEU NNP B-ORG\n] ) O\n\n{ ( O\nBo NNP B-PER\n\n", encoding="utf-8")
    corpus = load_corpus(path)
    assert corpus.sentences("train")[0] == (["[", "EU", "]"], ["O", "B-ORG", "O"])
