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
    for idx in _sentences(doc):
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
