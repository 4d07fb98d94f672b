"""`nertool evaluate --report`: the error kinds against a hand-made case and an independent count."""
from __future__ import annotations

import json

import pytest
from conftest import ENV, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from nertool.training.analysis import error_report, spans, worst_text

TOKENS = [["Anna", "Berg", "in", "Oslo", "and", "Acme", "x", "Euro", "Cup", "y", "Bob"], ["New", "York", "Times"]]
GOLD = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "O", "B-MISC", "I-MISC", "O", "O"], ["B-ORG", "I-ORG", "I-ORG"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG", "O", "O", "O", "B-MISC", "O", "O", "B-PER"], ["B-LOC", "I-LOC", "O"]]
SEEN = [[t != "Oslo" for t in s] for s in TOKENS]


def test_a_hand_made_case():
    r = error_report(TOKENS, GOLD, PRED, SEEN)
    # PER right; LOC read as ORG (same extent); ORG missed; MISC cut short; Bob spurious;
    # "New York Times" ORG read as LOC "New York" (type and extent)
    assert r["counts"] == {"correct": 1, "type": 1, "boundary": 1, "boundary_and_type": 1, "missed": 1, "spurious": 1}
    conf = r["confusion"]
    assert conf["labels"] == ["LOC", "MISC", "ORG", "PER", "O"]
    cell = lambda g, p: conf["matrix"][conf["labels"].index(g)][conf["labels"].index(p)]  # noqa: E731
    assert (cell("PER", "PER"), cell("LOC", "ORG"), cell("ORG", "O"), cell("MISC", "MISC"), cell("ORG", "LOC"),
            cell("O", "PER")) == (1, 1, 1, 1, 1, 1)
    assert sum(map(sum, conf["matrix"])) == 6
    seen, unseen = r["by_novelty"]["seen"], r["by_novelty"]["unseen"]
    assert (seen["gold"], seen["predicted"], seen["correct"]) == (4, 4, 1) and seen["f1"] == pytest.approx(0.25)
    assert (unseen["gold"], unseen["predicted"], unseen["correct"], unseen["f1"]) == (1, 1, 0, 0.0)
    by_len = {b["lengths"]: b for b in r["by_length"]}
    assert by_len["1-10"]["sentences"] == 1 and by_len["11-20"]["sentences"] == 1
    assert by_len["11-20"]["precision"] == pytest.approx(1 / 4) and by_len["11-20"]["recall"] == pytest.approx(1 / 4)
    assert [w["sentence"] for w in r["worst"]] == [1, 2] and [w["errors"] for w in r["worst"]] == [4, 1]
    text = worst_text(r)
    assert "Oslo/B-LOC/B-ORG" in text and "spurious: gold -, predicted PER Bob" in text


def _independent_counts(gold_tags, pred_tags):
    """The outcome counts by token sets, written apart from the module's matching."""
    counts = dict.fromkeys(("correct", "type", "boundary", "boundary_and_type", "missed", "spurious"), 0)
    for g_tags, p_tags in zip(gold_tags, pred_tags):
        g_spans, p_spans = spans(g_tags), spans(p_tags)
        cover = lambda s: set(range(s[1], s[2]))  # noqa: E731
        for g in g_spans:
            over = [p for p in p_spans if cover(p) & cover(g)]
            if g in p_spans:
                counts["correct"] += 1
            elif not over:
                counts["missed"] += 1
            else:
                best = max(over, key=lambda p: len(cover(p) & cover(g)))
                if cover(best) == cover(g):
                    counts["type"] += 1
                else:
                    counts["boundary" if best[0] == g[0] else "boundary_and_type"] += 1
        counts["spurious"] += sum(1 for p in p_spans if not any(cover(p) & cover(g) for g in g_spans))
    return counts


TAG = st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 12).flatmap(lambda n: st.tuples(st.lists(TAG, min_size=n, max_size=n),
                                                                  st.lists(TAG, min_size=n, max_size=n))), max_size=6))
def test_counts_agree_with_an_independent_count_and_with_seqeval(pairs):
    from seqeval.metrics import precision_score, recall_score

    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    tokens = [["w"] * len(g) for g in gold]
    r = error_report(tokens, gold, pred)
    assert r["counts"] == _independent_counts(gold, pred)
    n_gold = sum(len(spans(g)) for g in gold)
    n_pred = sum(len(spans(p)) for p in pred)
    c = r["counts"]
    assert c["correct"] + c["type"] + c["boundary"] + c["boundary_and_type"] + c["missed"] == n_gold
    if n_pred and n_gold:
        assert c["correct"] / n_pred == pytest.approx(precision_score(gold, pred))
        assert c["correct"] / n_gold == pytest.approx(recall_score(gold, pred))


def test_evaluate_report_on_a_corpus(tiny_model, tiny_corpus, tmp_path):
    """The report of `nertool evaluate --report` on the sample corpus agrees with its own scores;
    --report-dir writes the JSON, the PNG and the worst sentences."""
    out = tmp_path / "rep"
    r = run_cli("evaluate", str(tiny_model), str(tiny_corpus["test"]), "--json", "--report-dir", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    rep = res["report"]
    support = sum(t["support"] for t in res["per_type"].values())
    c = rep["counts"]
    assert c["correct"] + c["type"] + c["boundary"] + c["boundary_and_type"] + c["missed"] == support
    n_pred = c["correct"] / res["precision"] if res["precision"] else None
    if n_pred:
        assert n_pred == pytest.approx(sum(v["predicted"] for v in rep["by_length"]))
    assert sum(b["sentences"] for b in rep["by_length"]) == res["sentences"]
    assert json.loads((out / "report.json").read_text()) == rep
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "worst.txt").read_text().count("# sentence") == len(rep["worst"]) <= 20
    r = run_cli("evaluate", str(tiny_model), str(tiny_corpus["test"]), "--report", env={**ENV, "COLUMNS": "200"})
    assert r.returncode == 0 and "spans by outcome" in r.stdout and "words seen in training" in r.stdout
