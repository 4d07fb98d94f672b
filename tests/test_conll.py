import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nertool.config import DataConfig
from nertool.data import conll
from nertool.errors import DataFormatError, NertoolError


def write(tmp_path, text, name="c.txt", mode="w"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_bytes(text.encode("utf-8"))
    return p


def test_spaces_tabs_trailing_crlf_docstart(tmp_path):
    text = "-DOCSTART- -X- O\r\n\r\nEU NNP B-ORG  \r\nrejects\tVBZ\tO\r\n\r\n\r\n-DOCSTART- -X- O\r\nPeter NNP B-PER\r\nBlackburn NNP I-PER\r\n\r\n\r\n"
    sents = conll.read_conll(write(tmp_path, text))
    assert sents == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Blackburn"], ["B-PER", "I-PER"])]


def test_docstart_without_blank_line_and_no_final_newline(tmp_path):
    sents = conll.read_conll(write(tmp_path, "a O\n-DOCSTART- O\nb B-LOC"))
    assert sents == [(["a"], ["O"]), (["b"], ["B-LOC"])]


def test_columns_selectable(tmp_path):
    p = write(tmp_path, "Confidence NN B-NP\nin IN B-PP\n")
    assert conll.read_conll(p, 0, 1, check_tags=False) == [(["Confidence", "in"], ["NN", "IN"])]
    assert conll.read_conll(p, 0, -1) == [(["Confidence", "in"], ["B-NP", "B-PP"])]


def test_ragged_columns_name_the_line(tmp_path):
    p = write(tmp_path, "a X O\nb X O\n\nc O\n")
    with pytest.raises(DataFormatError) as e:
        conll.read_conll(p)
    assert e.value.line == 4 and str(p) in str(e.value) and "expected 3 columns, found 2" in str(e.value)


def test_unknown_tag_shape(tmp_path):
    p = write(tmp_path, "a O\nb PERSON\n")
    with pytest.raises(DataFormatError) as e:
        conll.read_conll(p)
    assert e.value.line == 2
    assert conll.read_conll(p, check_tags=False)[0][1] == ["O", "PERSON"]


def test_binary_and_bad_encoding(tmp_path):
    with pytest.raises(DataFormatError, match="not text"):
        conll.read_conll(write(tmp_path, b"a O\n\x00\x01\x02"))
    p = write(tmp_path, "caf\xe9 O\n".encode("latin-1"), "l1.txt")
    with pytest.raises(DataFormatError, match="latin-1") as e:
        conll.read_conll(p)
    assert e.value.line == 1
    assert conll.read_conll(p, encoding="latin-1") == [(["café"], ["O"])]


def test_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        conll.read_conll(tmp_path / "nope.txt")


CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t_\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

"""


def test_conllu_comments_multiword_and_empty_nodes(tmp_path):
    p = write(tmp_path, CONLLU, "x.conllu")
    assert conll.read_conllu(p) == [(["Do", "n't", "go", "."], ["AUX", "PART", "VERB", "PUNCT"])]
    assert conll.read_conllu(p, "xpos")[0][1] == ["VBP", "RB", "VB", "."]
    corpus = conll.load_corpus(p)
    assert corpus.scheme == "none" and set(corpus.labels) == {"AUX", "PART", "VERB", "PUNCT"}


def test_load_corpus_to_datasets(tiny_corpus):
    c = conll.load_corpus(tiny_corpus["train"], tiny_corpus["dev"], tiny_corpus["test"])
    assert c.scheme == "IOB2"
    assert set(c.splits) == {"train", "dev", "test"}
    feat = c.splits["train"].features["tags"].feature
    assert feat.names == list(c.labels) and c.labels[0] == "O"
    toks, tags = c.sentences("train")[0]
    assert len(toks) == len(tags) and all(t in c.labels for t in tags)


def test_repair_warns_or_rejects(tmp_path):
    p = write(tmp_path, "a O\nb I-PER\nc I-PER\n\nd B-PER\n")
    with pytest.warns(UserWarning, match="repaired 1 tags"):
        c = conll.load_corpus(p, data=DataConfig(scheme="IOB2"))
    assert c.sentences("train")[0][1] == ["O", "B-PER", "I-PER"]
    with pytest.raises(DataFormatError, match="break scheme"):
        conll.load_corpus(p, data=DataConfig(scheme="IOB2", strict=True))


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_raise_our_errors(tmp_path, data):
    p = tmp_path / "fuzz.txt"
    p.write_bytes(data)
    for reader in (conll.read_conll, conll.read_conllu):
        try:
            reader(p)
        except NertoolError:
            pass


CONLLU_FIELD = st.sampled_from(["1", "2", "1-2", "1.1", "x", "_", "", "NOUN", "Tom", " "])


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.lists(CONLLU_FIELD, min_size=8, max_size=11), st.just([]), st.just(["# c"])), max_size=10))
def test_fuzz_conllu_rows(tmp_path, rows):
    p = tmp_path / "fuzz.conllu"
    p.write_text("\n".join("\t".join(r) for r in rows), encoding="utf-8")
    try:
        sents = conll.read_conllu(p)
    except NertoolError:
        return
    for toks, tags in sents:
        assert len(toks) == len(tags) and all(toks) and all(t not in ("", "_") for t in tags)


LINE = st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=6), min_size=0, max_size=5)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(LINE, max_size=12), st.sampled_from([" ", "\t"]), st.integers(-3, 3))
def test_fuzz_random_column_layouts(tmp_path, rows, sep, tag_col):
    p = tmp_path / "fuzz.txt"
    p.write_text("\n".join(sep.join(r) for r in rows), encoding="utf-8")
    try:
        sents = conll.read_conll(p, tag_column=tag_col)
    except NertoolError:
        return
    for toks, tags in sents:
        assert len(toks) == len(tags) and all(toks) and all(tags)


def test_registry_entries_are_complete():
    reg = conll.registry()
    assert {"conll2003", "conll2002-es", "conll2002-nl", "conll2000", "wnut17", "ontonotes5", "ud-en-ewt"} <= set(reg)
    for name, e in reg.items():
        assert {"hub", "tags_column", "scheme", "layout", "licence", "description"} <= set(e), name
        assert e["scheme"] in ("IOB1", "IOB2", "BIOES", "none")


def test_hub_name_offline_is_a_clear_error(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(NertoolError, match="eriktks/conll2003.*from the hub failed"):
        conll.load_corpus("conll2003")
