"""Issue 35's first cases: a Tagger shared between threads, non-finite or absurd option values,
and a segmenter that fails on a document."""
from __future__ import annotations

import threading

import pytest
from conftest import run_cli

TEXTS = ["Anna Berg visited Oslo on Monday .", "Acme Corp opened an office in New York .",
         "Tim Cook met Angela Merkel in Berlin .", "The West Indies beat England at Lord 's ."]


def test_one_tagger_shared_by_eight_threads_gives_the_sequential_results(tiny_model):
    from nertool.tag.tagger import Tagger

    tagger = Tagger.load(str(tiny_model), threads=1)
    sents = [t.split() for t in TEXTS] * 5
    expected = [(r.tags, [c[:3] for c in r.chunks]) for r in Tagger.load(str(tiny_model)).tag_sentences(sents)]
    got, errors = {}, []

    def work(k):
        try:
            for round_ in range(15):
                if round_ % 5 == 4:
                    tagger.clear_cache()  # the shared state a concurrent call would trip over
                mine = sents[k:] + sents[:k]  # each thread its own order: different batches
                res = tagger.tag_sentences(mine, nbest=2 if k % 2 else 0)
                got.setdefault(k, []).append([(r.tags, [c[:3] for c in r.chunks]) for r in res])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k, rounds in got.items():
        want = expected[k:] + expected[:k]
        assert all(r == want for r in rounds), k
    assert [(r.tags, [c[:3] for c in r.chunks]) for r in tagger.tag_sentences(sents)] == expected  # still sound after


@pytest.mark.parametrize("value", ["inf", "1e309", "nan"])
def test_a_non_finite_doc_context_is_refused(tiny_model, value):
    r = run_cli("tag", str(tiny_model), "-", "--doc-context", value, stdin="Anna Berg visited Oslo .\n")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    if value != "nan":  # nan fails the option's own range check first (typer's usage error)
        assert "doc_context must be a finite" in r.stderr


def test_an_absurd_nbest_is_refused(tiny_model):
    r = run_cli("tag", str(tiny_model), "-", "--nbest", "1000000", stdin="Anna .\n")
    assert r.returncode == 2 and "nbest must be between 0 and 100" in r.stderr


def test_wide_spaces_before_a_full_stop_do_not_crash_the_segmenter():
    """A letter, a no-break (or thin, NEL, line separator) space, then a full stop made the Rust
    segmenter panic; it is given plain spaces, one for one, so offsets still index the text."""
    from nertool.data.segment import sentences

    for space in ("\u00a0", "\u2009", "\u0085", "\u2028", "\u2029"):
        text = f"They chose plan B{space}. Then Anna left."
        sents = sentences(text)
        assert [t.text for s in sents for t in s] == ["They", "chose", "plan", "B", ".", "Then", "Anna", "left", "."]
        assert all(text[t.start:t.end] == t.text for s in sents for t in s)


def test_a_failing_segmenter_falls_back_with_a_warning_naming_file_and_line(monkeypatch):
    import io

    from nertool.data import segment
    from nertool.data.inputs import read_documents, segment_documents

    class Panic(BaseException):  # what pyo3 raises for a Rust panic
        pass

    def broken(lang, text):
        raise Panic("end byte index 18 is not a char boundary")

    monkeypatch.setattr(segment, "get_sentence_boundaries", broken)
    docs = read_documents(io.BytesIO(b"first line\n\nAnna left. Tim stayed!  Oslo\n"), "in.txt", "text", lang=None)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(segment_documents(docs, "en"))
    said = [str(w.message) for w in caught]
    assert [m.split(":")[0:2] for m in said] == [["in.txt", "1"], ["in.txt", "3"]]  # each document, by its line
    assert all("the sentence segmenter failed" in m for m in said)
    assert [[t.text for t in s] for s in out[1].sentences] == [["Anna", "left", "."], ["Tim", "stayed", "!"], ["Oslo"]]


def test_long_training_sentences_are_cut_into_windows_between_chunks():
    from nertool.training.build import cut_long

    toks = [f"w{i}" for i in range(1000)]
    tags = ["B-PER" if i % 7 == 0 else "I-PER" if i % 7 == 1 else "O" for i in range(1000)]
    out, note = cut_long([(toks, tags), (["Anna"], ["B-PER"])], limit=250)
    assert note is not None and "1 training sentence(s) longer than 250 tokens (the longest 1000)" in note
    windows = out[:-1]
    assert all(len(t) <= 250 for t, _ in windows) and out[-1] == (["Anna"], ["B-PER"])
    assert [w for t, _ in windows for w in t] == toks and [g for _, t in windows for g in t] == tags
    assert all(t[0] != "I-PER" for _, t in windows)  # no chunk split across windows
    assert cut_long([(toks[:10], tags[:10])], limit=250) == ([(toks[:10], tags[:10])], None)


def test_training_on_a_very_long_sentence_warns_and_stays_fast(tmp_path):
    import time

    from conftest import SAMPLE

    lines = (SAMPLE / "train.conll").read_text(encoding="utf-8").split("\n\n")
    long_one = "\n".join(lines[i % 50].strip() for i in range(300))  # about 2,000 tokens in one sentence
    (tmp_path / "train.conll").write_text("\n\n".join(lines[:50] + [long_one]) + "\n", encoding="utf-8")
    t0 = time.monotonic()
    r = run_cli("train", tmp_path / "train.conll", "--out", tmp_path / "run", "--epochs", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "were cut into windows of at most 250 tokens" in r.stderr
    assert time.monotonic() - t0 < 240
