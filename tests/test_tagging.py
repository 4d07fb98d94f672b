import itertools
import json

import pytest
import torch
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from nertool.data.segment import sentences
from nertool.data.tags import is_valid
from nertool.data.text import tokenize
from nertool.model.decoding import constraint_bias, forward_backward, marginals, nbest_viterbi
from nertool.tag.tagger import Tagger

LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


@settings(max_examples=300)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_token_offsets_round_trip_any_unicode(text):
    for sent in sentences(text):
        assert sent
        for tok in sent:
            assert text[tok.start : tok.end] == tok.text and tok.text.strip()


@settings(max_examples=200)
@given(st.lists(st.text(st.characters(exclude_categories=()) | st.sampled_from("aZé😀\ud800日"), max_size=50),
                max_size=12), st.integers(1, 45))
def test_char_matrix_is_each_word_encoded_alone(words, max_chars):
    # any code point, lone surrogates and astral ones included; words longer than max_chars cut
    from nertool.model.encoding import Encoder
    from nertool.model.vocab import CharVocab, WordVocab

    chars = CharVocab(sorted(set("aZé😀\ud800日") | {"ab"}))  # a multi-character entry never matches
    enc = Encoder(WordVocab.build([["x"]]), chars, max_chars)
    ids = [chars.encode_word(w, max_chars) for w in words]
    width = max([1, *map(len, ids)])
    expected = torch.tensor([x + [0] * (width - len(x)) for x in ids], dtype=torch.long).reshape(len(words), width)
    assert torch.equal(enc.char_matrix(words), expected)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["Mr", "St", "Inc", "U.S.", "3.5", ".", ". ", " ", "x", "Paris", "..", "\n"]), max_size=14))
def test_abbreviations_merge_the_same_with_and_without_the_shortcut(pieces):
    from nertool.data.segment import merge_abbreviations, sentence_tokens

    text = "".join(pieces)
    assert sentence_tokens(text, 0, len(text)) == merge_abbreviations(tokenize(text))
    assert sentence_tokens(" " + text, 1, len(text) + 1) == merge_abbreviations(tokenize(text, 1))


def test_offsets_with_combining_marks_emoji_cjk_crlf():
    text = "Jose\u0301 met 👍🏽 in 東京\r\n\tParis.\r\nDone"
    toks = tokenize(text)
    assert [text[t.start : t.end] for t in toks] == [t.text for t in toks]
    assert "Jose\u0301" in [t.text for t in toks] and "Paris" in [t.text for t in toks]


def brute(em, start, end, trans, n, allowed):
    k = em.shape[1]
    out = []
    for path in itertools.product(range(k), repeat=n):
        if not allowed(path):
            continue
        s = start[path[0]] + em[0, path[0]] + end[path[-1]]
        for t in range(1, n):
            s = s + trans[path[t - 1], path[t]] + em[t, path[t]]
        out.append((float(s), path))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_marginals_and_nbest_equal_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    k, lengths = len(LABELS), [4, 2, 3]
    t = max(lengths)
    em = torch.randn(len(lengths), t, k, generator=g, dtype=torch.float64)
    start, end, trans = (torch.randn(k, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64),
                         torch.randn(k, k, generator=g, dtype=torch.float64))
    bs, be, bt = (b.double() for b in constraint_bias("BIOES", LABELS))
    start, end, trans = start + bs, end + be, trans + bt
    mask = torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    marg = marginals(em, mask, start, end, trans)
    _, _, _, log_z = forward_backward(em, mask, start, end, trans)
    top_tags, top_scores = nbest_viterbi(em, mask, start, end, trans, 3)
    for b, n in enumerate(lengths):
        allowed = lambda p: is_valid([LABELS[i] for i in p], "BIOES")  # noqa: E731
        paths = brute(em[b], start, end, trans, n, allowed)
        z = torch.logsumexp(torch.tensor([s for s, _ in paths]), 0)
        assert log_z[b].item() == pytest.approx(z.item(), abs=1e-6)
        expect = torch.zeros(n, k, dtype=torch.float64)
        for s, p in paths:
            for i, tag in enumerate(p):
                expect[i, tag] += torch.exp(torch.tensor(s) - z)
        assert torch.allclose(marg[b, :n], expect, atol=1e-6)
        assert torch.allclose(marg[b, :n].sum(1), torch.ones(n, dtype=torch.float64))
        paths.sort(reverse=True)
        for r in range(3):
            assert top_tags[b, r, :n].tolist() == list(paths[r][1])
            assert top_scores[b, r].item() == pytest.approx(paths[r][0], abs=1e-6)


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return Tagger.load(str(tiny_model))


def test_tagger_spans_offsets_and_scores(tagger):
    text = "Anna Berg visited New York on Monday .\r\n\r\nAcme Corp opened an office in Oslo ."
    doc = tagger(text)
    assert doc.spans and all(text[s.start : s.end] == s.text for s in doc.spans)
    assert all(0.0 <= s.score <= 1.0 for s in doc.spans)
    assert ("Anna Berg", "PER") in [(s.text, s.label) for s in doc.spans]
    assert len(doc.tags) == len(doc.tokens) == len(doc.token_scores)
    assert is_valid(doc.tags, "IOB2")


def test_span_score_is_the_marginal_of_the_span(tagger):
    """For a one-token span in BIOES, the span probability is the internal marginal of S-X at that
    token; the API's IOB2 marginal of B-X (B-X and S-X together) bounds it from above."""
    from nertool.model.decoding import marginals

    sent = ["Tom", "visited", "Oslo", "."]
    [res] = tagger.tag_sentences([sent], marginals=True)
    b = tagger.encoder.collate(tagger.encoder.encode([sent]), [0])
    with torch.no_grad():
        em = tagger.model.emissions(b.words, b.chars, b.char_index, b.mask)
    inner = marginals(em, b.mask, *tagger.decoder.trans)[0]
    labels = tagger.model.labels
    assert any(e - s == 1 for _, s, e, _ in res.chunks)
    for label, s, e, p in res.chunks:
        if e - s == 1:
            assert p == pytest.approx(inner[s, labels.index(f"S-{label}")].item(), abs=1e-5)
            assert p <= res.marginals[s][f"B-{label}"] + 1e-6
    assert all(sum(m.values()) == pytest.approx(1.0, abs=1e-5) for m in res.marginals)


def test_nbest_probabilities(tagger):
    [res] = tagger.tag_sentences([["Maria", "Lopez", "works", "for", "FIFA", "."]], nbest=4)
    probs = [p for _, p in res.nbest]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert res.nbest[0][0] == res.tags


def test_pipe_and_tag_tokens(tagger):
    docs = list(tagger.pipe(["Tom visited Paris .", "", "FIFA opened an office in Lagos ."], batch_size=1))
    assert len(docs) == 3 and docs[1].tokens == []
    [doc] = tagger.tag_tokens([["Olga", "works", "for", "UNESCO"]])
    assert doc.text == "Olga works for UNESCO" and len(doc.tags) == 4


def test_cached_word_features_give_the_per_batch_emissions(tiny_model, tiny_corpus, monkeypatch):
    """The Tagger computes character features once per word type and keeps them; the emissions
    must equal those of the plain per-batch path, across calls, and after the cache overflows."""
    from nertool.data.conll import read_conll
    from nertool.tag import features as features_mod

    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    t = Tagger.load(str(tiny_model), batch_size=7)
    plain = [r.tags for r in Tagger.load(str(tiny_model), batch_size=7).tag_sentences(sents[:3])]
    first = t.tag_sentences(sents)
    assert [r.tags for r in first[:3]] == plain
    assert [r.tags for r in t.tag_sentences(sents[::-1])][::-1] == [r.tags for r in first]
    with torch.inference_mode():
        for batch in t.encoder.batches(t.encoder.encode(sents), 7):
            a = t.model.emissions(batch.words, batch.chars, batch.char_index, batch.mask)
            b = t.model.emissions_from_features(batch.words, t.model.word_features(batch.chars), batch.char_index, batch.mask)
            assert torch.allclose(a, b, atol=1e-6)
        cached = t.features.table(set())
        rows = list(t.features.rows.items())
        direct = t.model.word_features(t.encoder.char_matrix([w for w, _ in rows]))
        assert torch.allclose(cached[[r for _, r in rows]], direct, atol=1e-6)
        assert not cached[0].any()  # row 0: the empty word (padding)
    monkeypatch.setattr(features_mod, "FEATURE_CACHE_ROWS", 20)
    small = Tagger.load(str(tiny_model), batch_size=7)
    for i in range(0, len(sents), 5):  # far more distinct words than 20: the table starts afresh
        assert [r.tags for r in small.tag_sentences(sents[i : i + 5])] == [r.tags for r in first[i : i + 5]]


def test_ten_thousand_token_sentence(tagger):
    toks = ("Tom visited Paris and".split() * 2500)
    [res] = tagger.tag_sentences([toks])
    assert len(res.tags) == 10_000


def test_cli_stdin_stdout_every_format(tiny_model, tiny_corpus, tmp_path):
    text = "Anna Berg visited New York on Monday .\nAcme Corp opened an office in Oslo .\n"
    r = run_cli("tag", str(tiny_model), "-", "--nbest", "2", stdin=text)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(recs) == 2
    for rec in recs:
        assert len(rec["tokens"]) == len(rec["tags"]) == len(rec["offsets"])
        for s in rec["spans"]:  # offsets index the document (here the whole paragraph on stdin)
            assert rec["text"][s["start"] - rec["start"] : s["end"] - rec["start"]] == s["text"]
        assert rec["nbest"][0]["tags"] == rec["tags"]
    r = run_cli("tag", str(tiny_model), "-", "--format", "inline", "--input-format", "lines", stdin=text)
    assert r.returncode == 0 and "[Anna Berg](PER)" in r.stdout
    out = tmp_path / "pred.conll"
    r = run_cli("tag", str(tiny_model), str(tiny_corpus["test"]), "--input-format", "conll", "--format", "conll", "-o", str(out))
    assert r.returncode == 0, r.stderr
    from nertool.data.conll import read_conll

    pred = read_conll(out)  # parses back: input columns + predicted tag
    gold = read_conll(tiny_corpus["test"])
    assert [t for t, _ in pred] == [t for t, _ in gold]
    assert all(len(l.split()) == 3 for l in out.read_text().splitlines() if l)  # token, gold, predicted


def test_cli_tag_errors(tiny_model, tmp_path):
    r = run_cli("tag", str(tiny_model), str(tmp_path / "missing.txt"))
    assert r.returncode == 2 and "missing.txt" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes("fine line\nbad \xff line\n".encode("latin-1"))
    r = run_cli("tag", str(tiny_model), str(bad))
    assert r.returncode == 2 and f"{bad}:2:" in r.stderr
    r = run_cli("tag", str(tiny_model), "-", "--device", "cuda", stdin="x\n")
    if torch.cuda.is_available():
        assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["tokens"] == ["x"]
    else:
        assert r.returncode == 2 and "CUDA is not available" in r.stderr


@pytest.mark.parametrize("internal", ["BIOES", "same"])
def test_span_scores_equal_brute_force(tiny_corpus, tmp_path, internal):
    """A span's score is the total probability of the label sequences containing exactly that
    chunk, for BIOES-internal and IOB2-internal models alike."""
    from nertool.config import Config
    from nertool.data import tags as T
    from nertool.data.conll import load_corpus
    from nertool.training.loop import train

    corpus = load_corpus(tiny_corpus["train"], tiny_corpus["dev"])
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=16, char_hidden=8),
                 train=base.train.replace(epochs=8, batch_size=16, lr=0.02, internal_scheme=internal, threads=1))
    train(corpus, cfg, tmp_path / "m")
    tagger = Tagger.load(str(tmp_path / "m"))
    sents = [["Tom", "visited", "New", "York"], ["Acme", "Corp", "rose"]]
    results = tagger.tag_sentences(sents)
    assert any(r.chunks for r in results)
    start, end, trans = tagger.decoder.trans
    labels = tagger.model.labels  # the internal labels the paths index
    for toks, res in zip(sents, results):
        b = tagger.encoder.collate(tagger.encoder.encode([toks]), [0])
        with torch.no_grad():
            em = tagger.model.emissions(b.words, b.chars, b.char_index, b.mask)[0].double()
        paths = brute(em, start.double(), end.double(), trans.double(), len(toks), lambda p: True)
        z = torch.logsumexp(torch.tensor([s for s, _ in paths]), 0)
        for label, s, e, score in res.chunks:
            total = sum(float(torch.exp(torch.tensor(sc) - z)) for sc, p in paths
                        if (label, s, e) in T.chunks([labels[i] for i in p], tagger.internal))
            assert score == pytest.approx(total, abs=1e-4)


def test_cached_word_features_equal_each_word_encoded_alone(tiny_model):
    """The Tagger encodes new words in runs of one length; each row must be the word's own features."""
    from nertool.tag.features import length_runs

    tagger = Tagger.load(str(tiny_model))
    limit = tagger.encoder.max_chars
    words = ["a", "bb", "Cc", "ddd", "x" * limit, "y" * (limit + 5), "z" * (limit + 1), "Émile", "北京"]
    with torch.inference_mode():
        table = tagger.features.table(set(words))
        for w in words:
            alone = tagger.model.word_features(tagger.encoder.char_matrix([w]))[0]
            assert torch.allclose(table[tagger.features.rows[w]], alone, atol=1e-6), w
    ordered = sorted(words, key=lambda w: (len(w), w))
    runs = length_runs(ordered, limit, 2)
    assert [i for a, b in runs for i in range(a, b)] == list(range(len(words)))
    assert all(b - a <= 2 and len({min(len(w), limit) for w in ordered[a:b]}) == 1 for a, b in runs)


def test_tagging_pauses_the_cycle_collector_and_leaves_no_cycles(tagger):
    """The cycle collector is off during a call (nothing the call makes needs it: no garbage
    cycles are left behind) and back as it was after."""
    import gc

    sents = [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"]]
    seen = []
    real = tagger._tag_locked

    def spy(*args):
        seen.append(gc.isenabled())
        return real(*args)

    tagger._tag_locked = spy
    try:
        gc.collect()
        tagger.tag_sentences(sents)
        assert seen == [False] and gc.isenabled()
        gc.disable()
        try:
            tagger.tag_sentences(sents, nbest=2, marginals=True, doc_context=1.0, documents=[0, 0, 1])
            list(tagger.pipe(["Peter Blackburn met EU officials in Brussels.", "Nothing here."]))
            assert not gc.isenabled()  # left off, as it was
            assert gc.collect() == 0
        finally:
            gc.enable()
    finally:
        del tagger._tag_locked


def test_numbers_dates_scores_and_dashes_are_tokens_as_conll_writes_them():
    text = "On 1996-08-22 Japan won 2-1 in the 16th minute of a 3.5-fold 21-year-old 1990s rally -- 1,000 fans ... at 12:30 in 1996."
    words = [t.text for t in tokenize(text)]
    assert words == ["On", "1996-08-22", "Japan", "won", "2-1", "in", "the", "16th", "minute", "of", "a", "3.5-fold",
                     "21-year-old", "1990s", "rally", "--", "1,000", "fans", "...", "at", "12:30", "in", "1996", "."]
    assert [t.text for t in tokenize("Shimokawa 's 1990's 'spirit'")] == ["Shimokawa", "'s", "1990", "'s", "'", "spirit", "'"]
    assert all(text[t.start:t.end] == t.text for t in tokenize(text))


def test_padding_batches_to_a_row_multiple_changes_no_result(tagger):
    """``row_multiple`` pads what the network sees (fewer shapes for the service): every result
    is the one of the unpadded batch."""
    sents = [["Anna", "Berg", "visited", "New", "York", "on", "Monday", "."], ["Acme", "Corp"],
             ["Oslo", "is", "cold", "in", "January", "and", "Anna", "Berg", "knows", "it", "."]]
    plain = tagger.tag_sentences(sents, marginals=True, nbest=2)
    for rows in (2, 5, 8, 13):
        assert tagger.tag_sentences(sents, marginals=True, nbest=2, row_multiple=rows) == plain
    with pytest.raises(Exception, match="row_multiple"):
        tagger.tag_sentences(sents, row_multiple=0)
