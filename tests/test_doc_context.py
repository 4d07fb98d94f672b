"""Document-level type consistency at decoding (``--doc-context``): the mentions of a name in one
document are pulled towards one entity type, from the CRF's marginals."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample"


def test_type_consistency_is_the_log_mean_type_mass_of_each_group():
    from nertool.model.decoding import type_consistency

    # tags O, B-PER, I-PER, B-LOC -> types O=0, PER=1, LOC=2
    tag_types = torch.tensor([0, 1, 1, 2])
    p = torch.tensor([[0.1, 0.5, 0.2, 0.2],   # group 0
                      [0.0, 0.1, 0.0, 0.9],   # group 0
                      [1.0, 0.0, 0.0, 0.0],   # no group
                      [0.2, 0.3, 0.3, 0.2]])  # group 1, alone
    groups = torch.tensor([0, 0, -1, 1])
    bias = type_consistency(p, groups, tag_types, 3, 2.0)
    by_hand = []
    for i in range(4):
        if groups[i] < 0:
            by_hand.append([0.0] * 4)
            continue
        members = [j for j in range(4) if groups[j] == groups[i]]
        mass = [sum(sum(float(p[j, k]) for k in range(4) if tag_types[k] == t) for j in members) / len(members) for t in range(3)]
        by_hand.append([2.0 * math.log(mass[int(tag_types[k])] + 1e-6) for k in range(4)])
    assert torch.allclose(bias, torch.tensor(by_hand), atol=1e-5)
    assert torch.equal(type_consistency(p, groups, tag_types, 3, 0.0), torch.zeros(4, 4))
    assert bool((bias <= 1e-6).all())  # log of a mean of probabilities


DOC = "-DOCSTART-"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.just(DOC), st.lists(st.sampled_from(["Paris", "PARIS", "Anna", "the", "x"]), min_size=1, max_size=4)),
                max_size=10))
def test_document_ids_count_the_docstart_lines_before_each_sentence(tmp_path_factory, items):
    from nertool.data.conll import document_ids, read_conll

    path = tmp_path_factory.mktemp("docs") / "f.conll"
    lines, expected, seen = [], [], 0
    dense: dict[int, int] = {}  # documents without sentences get no number
    for item in items:
        if item == DOC:
            seen += 1
            lines += [f"{DOC} O", ""]
        else:
            lines += [f"{w} O" for w in item] + [""]
            expected.append(dense.setdefault(seen, len(dense)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ids = document_ids(path)
    assert ids == expected
    if expected:
        assert len(read_conll(path)) == len(ids)


def test_name_groups_join_capitalised_forms_within_a_document_only():
    from nertool.model.context import name_groups

    g = name_groups([["Paris", "is", "PARIS"], ["paris", "Paris"], ["Paris"]], [0, 0, 1])
    assert g[0] == g[2] == g[4] and g[1] == -1 and g[3] == -1  # lower-case "paris" is not a mention
    assert g[5] not in (-1, g[0])  # another document, another group


def _two_documents(tmp_path: Path) -> Path:
    text = (SAMPLE / "test.conll").read_text(encoding="utf-8").replace("-DOCSTART- O\n\n", "").strip().split("\n\n")
    half = len(text) // 2
    path = tmp_path / "docs.conll"
    path.write_text("-DOCSTART- O\n\n" + "\n\n".join(text[:half]) + "\n\n-DOCSTART- O\n\n" + "\n\n".join(text[half:]) + "\n",
                    encoding="utf-8")
    return path


class _ContextModel(torch.nn.Module):
    """A stand-in network with scores set by hand: each word's own tag scores, plus +5 for PER
    after the word "Dr"; no transition scores."""

    def __init__(self, words, table: torch.Tensor, dr: int):
        super().__init__()
        from nertool.config import ModelConfig

        self.labels = ["O", "B-PER", "B-LOC"]
        self.config = ModelConfig()
        self.table, self.dr = table, dr
        self.words = words

    def emissions(self, words, chars, char_index, mask):
        em = self.table[words]  # shape: (batch, seq_len, 3)
        after_dr = torch.zeros_like(words, dtype=torch.bool)
        after_dr[:, 1:] = words[:, :-1] == self.dr
        return em + after_dr.unsqueeze(2) * torch.tensor([0.0, 5.0, 0.0])

    def word_features(self, chars):
        return torch.zeros(chars.shape[0], 0)

    def emissions_from_features(self, words, features, char_index, mask):
        return self.emissions(words, None, char_index, mask)

    def transition_scores(self):
        return torch.zeros(3), torch.zeros(3), torch.zeros(3, 3)


def _context_bundle():
    from nertool.model.vocab import PAD, UNK, CharVocab, Normalization, WordVocab
    from nertool.store.checkpoint import ModelBundle

    vocab = [PAD, UNK, "dr", "anna", "spoke", "left"]
    words = WordVocab({w: i for i, w in enumerate(vocab)}, len(vocab), Normalization())
    table = torch.zeros(len(vocab), 3)
    table[:, 0] = 3.0  # every word is O ...
    table[3] = torch.tensor([0.0, 0.8, 1.0])  # ... but "Anna": a person or a place, LOC slightly ahead
    model = _ContextModel(words, table, dr=2)
    return ModelBundle(model, words, CharVocab(sorted(set("Dranspokelft"))), "IOB2", "IOB2")


def test_doc_context_pulls_a_weak_mention_to_the_type_of_a_sure_one_in_its_document_only():
    from nertool.training.evaluate import predict

    bundle = _context_bundle()
    sents = [["Dr", "Anna", "spoke"], ["Anna", "left"], ["Anna", "left"]]
    docs = [0, 0, 1]
    plain = predict(bundle, sents)
    assert plain == [["O", "B-PER", "O"], ["B-LOC", "O"], ["B-LOC", "O"]]
    assert predict(bundle, sents, documents=docs, doc_context=0.0) == plain
    # the sure "Dr Anna" turns the unsure "Anna" of its document into a person, not the other one's
    assert predict(bundle, sents, documents=docs, doc_context=1.0) == [["O", "B-PER", "O"], ["B-PER", "O"], ["B-LOC", "O"]]
    # all in one document: both follow
    assert predict(bundle, sents, documents=[0, 0, 0], doc_context=1.0)[2] == ["B-PER", "O"]
    # lower-case tokens are never grouped: "anna" keeps its own decision
    assert predict(bundle, [["Dr", "Anna"], ["anna", "left"]], documents=[0, 0], doc_context=1.0)[1] == ["B-LOC", "O"]


def test_cli_evaluate_doc_context(tiny_model, tmp_path):
    import json

    from typer.testing import CliRunner

    from nertool.cli.app import app

    path = _two_documents(tmp_path)
    runner = CliRunner()
    plain = runner.invoke(app, ["evaluate", str(tiny_model), str(path), "--json"])
    ctx = runner.invoke(app, ["evaluate", str(tiny_model), str(path), "--json", "--doc-context", "1"])
    assert plain.exit_code == 0 and ctx.exit_code == 0, ctx.output
    a, b = json.loads(plain.output), json.loads(ctx.output)
    assert a["doc_context"] == 0 and b["doc_context"] == 1 and b["documents"] == 2
    zero = runner.invoke(app, ["evaluate", str(tiny_model), str(path), "--json", "--doc-context", "0"])
    assert json.loads(zero.output)["f1"] == a["f1"]
    bad = runner.invoke(app, ["evaluate", str(tiny_model), str(path), "--doc-context", "-1"])
    assert bad.exit_code == 2


def test_the_tagger_applies_doc_context_within_each_text_and_reports_the_adjusted_confidences():
    from nertool import Tagger

    tagger = Tagger(_context_bundle())
    sents = [["Dr", "Anna", "spoke"], ["Anna", "left"], ["Anna", "left"]]
    plain = tagger.tag_sentences(sents, documents=[0, 0, 1])
    pulled = tagger.tag_sentences(sents, documents=[0, 0, 1], doc_context=1.0)
    assert [r.tags for r in plain] == [["O", "B-PER", "O"], ["B-LOC", "O"], ["B-LOC", "O"]]
    assert [r.tags for r in pulled] == [["O", "B-PER", "O"], ["B-PER", "O"], ["B-LOC", "O"]]
    # the confidence of the pulled mention is that of the adjusted scores: PER now more likely than not
    assert pulled[1].chunks[0][0] == "PER" and pulled[1].chunks[0][3] > 0.5 > plain[1].chunks[0][3]
    # the other document keeps its decision (a lone mention only sharpens its own type evidence)
    assert [c[:3] for c in pulled[2].chunks] == [c[:3] for c in plain[2].chunks] == [("LOC", 0, 1)]
    # Tagger.pipe: each text is one document
    docs = list(tagger.pipe(["Dr Anna spoke. Anna left.", "Anna left."], doc_context=1.0))
    assert [s.label for s in docs[0].spans] == ["PER", "PER"] and [s.label for s in docs[1].spans] == ["LOC"]
    with pytest.raises(Exception, match="non-negative"):
        tagger.tag_sentences(sents, documents=[0, 0, 1], doc_context=-1.0)


def test_cli_tag_doc_context(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from nertool.cli.app import app

    text = tmp_path / "in.txt"
    text.write_text((SAMPLE / "sample.txt").read_text(encoding="utf-8"), encoding="utf-8")
    runner = CliRunner()
    outs = {}
    for w in ("0", "1"):
        r = runner.invoke(app, ["tag", str(tiny_model), str(text), "--doc-context", w, "-o", str(tmp_path / f"o{w}.jsonl")])
        assert r.exit_code == 0, r.output
        outs[w] = (tmp_path / f"o{w}.jsonl").read_text()
    r = runner.invoke(app, ["tag", str(tiny_model), str(text), "-o", str(tmp_path / "plain.jsonl")])
    assert (tmp_path / "plain.jsonl").read_text() == outs["0"]
    assert outs["1"].count("\n") == outs["0"].count("\n")


def test_conll_input_sections_are_documents_for_doc_context(tmp_path):
    """`nertool tag` on CoNLL input: the sentences of one -DOCSTART- section are one document."""
    import io

    from nertool.data.inputs import read_documents
    from nertool.tag.options import TagOptions
    from nertool.tag.tagger import Tagger

    text = ("-DOCSTART- O\n\nAnna O\nran O\n\nAnna O\n\n-DOCSTART- O\nAnna O\n\n"
            "-DOCSTART- O\n\n-DOCSTART- O\n\nBo O\n\nAnna O\n")
    docs = list(read_documents(io.BytesIO(text.encode()), "f.conll", "conll"))
    assert [d.group for d in docs] == [1, 1, 2, 4, 4]
    assert [d.line for d in docs] == [3, 6, 9, 15, 17]

    class Recorder:  # stands in for a Tagger: records the documents it is given
        def tag_sentences(self, sentences, options, documents):
            self.documents = list(documents)
            from nertool.tag.decode import SentenceResult

            return [SentenceResult(["O"] * len(s), [], [1.0] * len(s)) for s in sentences]

    tagger = Recorder()
    out = list(Tagger.tag_documents(tagger, docs, TagOptions(doc_context=1.0)))
    assert len(out) == 5
    assert tagger.documents == [0, 0, 1, 2, 2]
    plain = list(read_documents(io.BytesIO(b"Anna O\n\nBo O\n"), "g.conll", "conll"))
    assert [d.group for d in plain] == [0, 0]  # no -DOCSTART- line: the file is one document


def test_conll_output_keeps_the_docstart_lines(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from nertool.cli.app import app
    from nertool.data.conll import document_ids, read_conll

    src = tmp_path / "in.conll"
    src.write_text("-DOCSTART- -X- O\n\nAnna x B-PER\nran x O\n\nOslo x B-LOC\n\n-DOCSTART- -X- O\nBo x B-PER\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["tag", str(tiny_model), str(src), "--input-format", "conll", "--format", "conll",
                                 "--doc-context", "1", "-o", str(tmp_path / "out.conll")])
    assert r.exit_code == 0, r.output
    out = (tmp_path / "out.conll").read_text(encoding="utf-8")
    assert out.startswith("-DOCSTART- -X- O O\n\nAnna x B-PER ")
    assert out.count("-DOCSTART-") == 2
    assert document_ids(tmp_path / "out.conll") == document_ids(src) == [0, 0, 1]
    assert [t for t, _ in read_conll(tmp_path / "out.conll")] == [t for t, _ in read_conll(src)]
