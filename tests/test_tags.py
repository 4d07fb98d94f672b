import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nertool.data import tags as T


def test_split_tag():
    assert T.split_tag("B-PER") == ("B", "PER")
    assert T.split_tag("O") == ("O", "")
    assert T.split_tag("S-LOC") == ("S", "LOC")
    assert T.split_tag("U-LOC") == ("S", "LOC")  # BILOU synonym
    for bad in ("PER", "B", "X-PER", "B-", "NN", ""):
        with pytest.raises(T.TagError):
            T.split_tag(bad)


def test_detect_scheme():
    assert T.detect_scheme([["B-PER", "I-PER", "O"]]) == "IOB2"
    assert T.detect_scheme([["I-PER", "I-PER", "O", "I-LOC"]]) == "IOB1"
    assert T.detect_scheme([["S-PER", "O", "B-LOC", "E-LOC"]]) == "BIOES"


def test_conversion_examples():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    bioes = ["B-PER", "E-PER", "S-PER", "O", "S-LOC"]
    assert T.convert(iob1, "IOB1", "IOB2") == iob2
    assert T.convert(iob2, "IOB2", "BIOES") == bioes
    assert T.convert(bioes, "BIOES", "IOB1") == iob1
    # ill-formed IOB2 (I- after O) is repaired as a new chunk, as conlleval reads it
    assert T.convert(["O", "I-PER", "I-PER"], "IOB2", "IOB2") == ["O", "B-PER", "I-PER"]


@st.composite
def chunkings(draw):
    n = draw(st.integers(0, 12))
    chunks, i = [], 0
    while i < n:
        if draw(st.booleans()):
            length = draw(st.integers(1, n - i))
            chunks.append((draw(st.sampled_from(["PER", "LOC", "ORG"])), i, i + length))
            i += length
        else:
            i += 1
    return chunks, n


@given(chunkings(), st.sampled_from(T.SCHEMES), st.sampled_from(T.SCHEMES))
def test_round_trip_between_schemes(ch, source, target):
    chunks, n = ch
    src = T.from_chunks(chunks, n, source)
    assert T.is_valid(src, source)
    assert T.chunks(src, source) == chunks
    dst = T.convert(src, source, target)
    assert T.is_valid(dst, target)
    assert T.chunks(dst, target) == chunks
    assert T.convert(dst, target, source) == src


LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_allowed_transitions_iob2_complete():
    start, end, trans = T.allowed_transitions("IOB2", LABELS)
    assert start == [True, True, False, True, False]
    assert end == [True] * 5
    allowed = {(LABELS[i], LABELS[j]) for i, j in itertools.product(range(5), repeat=2) if trans[i][j]}
    expected = {(a, b) for a in LABELS for b in ("O", "B-PER", "B-LOC")} | {
        ("B-PER", "I-PER"), ("I-PER", "I-PER"), ("B-LOC", "I-LOC"), ("I-LOC", "I-LOC")}
    assert allowed == expected


def test_allowed_transitions_bioes_complete():
    labels = ["O", "B-X", "I-X", "E-X", "S-X", "B-Y", "E-Y", "S-Y"]
    start, end, trans = T.allowed_transitions("BIOES", labels)
    assert [l for l, a in zip(labels, start) if a] == ["O", "B-X", "S-X", "B-Y", "S-Y"]
    assert [l for l, a in zip(labels, end) if a] == ["O", "E-X", "S-X", "E-Y", "S-Y"]
    allowed = {(labels[i], labels[j]) for i, j in itertools.product(range(len(labels)), repeat=2) if trans[i][j]}
    openers = ["O", "B-X", "S-X", "B-Y", "S-Y"]
    expected = {(a, b) for a in ["O", "E-X", "S-X", "E-Y", "S-Y"] for b in openers} | {
        ("B-X", "I-X"), ("B-X", "E-X"), ("I-X", "I-X"), ("I-X", "E-X"), ("B-Y", "E-Y")}
    assert allowed == expected


@given(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "E-PER", "S-PER"]), max_size=8))
def test_is_valid_matches_allowed_transitions(seq):
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    start, end, trans = T.allowed_transitions("BIOES", labels)
    idx = [labels.index(t) for t in seq]
    ok = not idx or (start[idx[0]] and end[idx[-1]] and all(trans[a][b] for a, b in zip(idx, idx[1:])))
    assert T.is_valid(seq, "BIOES") == ok


def test_detect_scheme_tolerates_a_few_ill_formed_iob2_chunks():
    sents = [["B-PER", "I-PER", "O", "B-LOC"]] * 20 + [["O", "I-ORG"]]
    assert T.detect_scheme(sents) == "IOB2"
