"""Issue 40, first part: the spaCy component. Entities and scores equal the Tagger's on the same
tokens; doc.ents or a span group; nlp.pipe batches; to_disk / spacy.load round trip."""
from __future__ import annotations

import pytest

spacy = pytest.importorskip("spacy")

from nertool import Tagger  # noqa: E402
from nertool.spacy_pipe import _sentences  # noqa: E402

TEXTS = ["Angela Merkel met Emmanuel Macron in Paris. EU rejects German call.",
         "Peter Blackburn works for Acme Corp in New York.\n\nAnna Berg visited Oslo on Monday.", ""]


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("nertool", config={"model": "en-fast", "marginals": True, "nbest": 2})
    return nlp


def expected(doc):
    tagger = Tagger.load("en-fast")
    out = []
    for idx in _sentences(doc, [t.text for t in doc]):
        r = tagger.tag_sentences([[doc[i].text for i in idx]])[0]
        out += [(idx[s], idx[e - 1] + 1, label, p) for label, s, e, p in r.chunks]
    return out


def test_entities_and_scores_equal_the_taggers_on_spacys_tokens(nlp):
    for text in TEXTS:
        doc = nlp(text)
        want = expected(nlp.make_doc(text))
        assert [(e.start, e.end, e.label_) for e in doc.ents] == [(a, b, label) for a, b, label, _ in want]
        assert doc.spans["nertool"].attrs["scores"] == pytest.approx([p for *_, p in want], abs=1e-6)  # batch rounding
        assert all(doc.text[e.start_char:e.end_char] == e.text for e in doc.ents)
    doc = nlp(TEXTS[0])
    assert [e.text for e in doc.ents][:2] == ["Angela Merkel", "Emmanuel Macron"]
    m = doc[0]._.nertool_marginals
    assert abs(sum(m.values()) - 1) < 1e-4 and max(m, key=m.get) == "B-PER"
    assert len(doc._.nertool_nbest) == 2 and len(doc._.nertool_nbest[0]) == 2  # two sentences, 2-best each


def test_pipe_batches_docs_with_the_same_answers(nlp):
    one = [[(e.start, e.end, e.label_) for e in nlp(t).ents] for t in TEXTS]
    many = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(TEXTS * 3, batch_size=4)]
    assert many == one * 3
    small = spacy.blank("en")  # calls of 4 sentences: docs cross the calls' edges
    small.add_pipe("nertool", config={"model": "en-fast", "batch_size": 1})
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in small.pipe(TEXTS * 3)] == one * 3


def test_a_span_group_keeps_another_ners_entities():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "CITY", "pattern": "Paris"}])
    nlp.add_pipe("nertool", config={"model": "en-fast", "spans_key": "crf"})
    doc = nlp(TEXTS[0])
    assert [(e.text, e.label_) for e in doc.ents] == [("Paris", "CITY")]
    assert [s.text for s in doc.spans["crf"]][:2] == ["Angela Merkel", "Emmanuel Macron"]


def test_the_pipeline_saves_with_its_model_and_loads_with_spacy_load(nlp, tmp_path, tiny_model):
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("sentencizer")
    nlp2.add_pipe("nertool", config={"model": str(tiny_model)})
    before = [(e.start, e.end, e.label_) for e in nlp2(TEXTS[1]).ents]
    nlp2.to_disk(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "nertool" / "model" / "config.json").exists()
    loaded = spacy.load(tmp_path / "pipe")
    assert loaded.pipe_names == ["sentencizer", "nertool"]
    assert [(e.start, e.end, e.label_) for e in loaded(TEXTS[1]).ents] == before
    nlp.to_disk(tmp_path / "bundled")  # a bundled model travels too
    again = spacy.load(tmp_path / "bundled")
    assert [e.text for e in again(TEXTS[0]).ents] == [e.text for e in nlp(TEXTS[0]).ents]


def test_a_pipeline_with_another_tokenizer_tags_its_tokens():
    from spacy.tokens import Doc

    class Whitespace:  # a tokenizer unlike spaCy's: split at spaces only ("Paris." stays one token)
        def __init__(self, vocab):
            self.vocab = vocab

        def __call__(self, text):
            words = text.split(" ")
            return Doc(self.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])

    nlp = spacy.blank("en")
    nlp.tokenizer = Whitespace(nlp.vocab)
    nlp.add_pipe("nertool", config={"model": "en-fast"})
    text = "Angela Merkel met Emmanuel Macron in Paris."
    doc = nlp(text)
    assert [t.text for t in doc][-1] == "Paris."
    want = Tagger.load("en-fast").tag_sentences([text.split(" ")])[0].chunks
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(s, e, label) for label, s, e, _ in want]


def test_docbin_out_of_nertool_tag_and_back_into_training(tmp_path, tiny_model, tiny_corpus):
    from conftest import run_cli
    from spacy.tokens import DocBin

    from nertool.config import DataConfig
    from nertool.data.conll import read_file

    text = tmp_path / "in.txt"
    text.write_text(TEXTS[1], encoding="utf-8")
    r = run_cli("tag", "en-fast", text, "--format", "spacy", "-o", tmp_path / "out.spacy")
    assert r.returncode == 0, r.stderr
    docs = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(spacy.blank("en").vocab))
    tagged = Tagger.load("en-fast")(TEXTS[1])
    assert [(e.text, e.label_) for d in docs for e in d.ents] == [(s.text, s.label) for s in tagged.spans]
    # CoNLL -> DocBin -> CoNLL, and training reads a DocBin as it is
    r = run_cli("convert", tiny_corpus["dev"], tmp_path / "dev.spacy")
    assert r.returncode == 0, r.stderr
    assert read_file(tmp_path / "dev.spacy") == read_file(tiny_corpus["dev"], DataConfig())
    r = run_cli("convert", tmp_path / "dev.spacy", tmp_path / "dev.conll")
    assert read_file(tmp_path / "dev.conll") == read_file(tiny_corpus["dev"])
    # a DocBin whose docs have sentence boundaries gives one training sentence per sentence
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    doc = nlp("Anna Berg visited Oslo. Hiro met Chen.")
    doc.ents = [doc.char_span(0, 9, "PER"), doc.char_span(18, 22, "LOC")]
    DocBin(docs=[doc]).to_disk(tmp_path / "sents.spacy")
    assert read_file(tmp_path / "sents.spacy") == [(["Anna", "Berg", "visited", "Oslo", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"]),
                                                   (["Hiro", "met", "Chen", "."], ["O", "O", "O", "O"])]
    (tmp_path / "bad.spacy").write_bytes(b"not a docbin")
    r = run_cli("train", tmp_path / "bad.spacy", "--out", tmp_path / "run")
    assert r.returncode == 2 and "not a readable spaCy DocBin" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_spacy_package_builds_an_installable_pipeline(tmp_path, tiny_model):
    import json
    import os
    import subprocess
    import sys

    nlp = spacy.blank("en")
    nlp.add_pipe("nertool", config={"model": str(tiny_model)})
    nlp.meta["name"], nlp.meta["version"] = "nertool_tiny", "0.1.0"
    nlp.to_disk(tmp_path / "pipe")
    (tmp_path / "dist").mkdir()
    r = subprocess.run([sys.executable, "-m", "spacy", "package", str(tmp_path / "pipe"), str(tmp_path / "dist")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (sdist,) = (tmp_path / "dist").rglob("*.tar.gz")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                        str(tmp_path / "site"), str(sdist)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    check = ("import json, spacy; nlp = spacy.load('en_nertool_tiny'); "
             "print(json.dumps([nlp.meta['requirements'], [(e.text, e.label_) for e in nlp('Anna Berg visited Oslo .').ents]]))")
    r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert r.returncode == 0, r.stderr
    requirements, ents = json.loads(r.stdout)
    assert any(req.startswith("nertool") for req in requirements)
    doc = spacy.blank("en")("Anna Berg visited Oslo .")
    want = Tagger.load(str(tiny_model)).tag_sentences([[t.text for t in doc]])[0].chunks
    assert ents == [[" ".join(t.text for t in doc[s:e]), label] for label, s, e, _ in want]
