"""Issue 39, first part: `nertool select` ranks a pool's sentences by the CRF's uncertainty,
streams the pool in memory bounded by N, and writes Prodigy-style tasks with the model's spans."""
from __future__ import annotations

import json
import math

import pytest
from conftest import SAMPLE, run_cli

from nertool import Tagger
from nertool.data.inputs import Document
from nertool.data.segment import sentences as split_text
from nertool.tag.select import STRATEGIES, options_for, select, uncertainty

TEXTS = [line for line in (SAMPLE / "sample.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return Tagger.load(str(tiny_model))


def docs(texts):
    return (Document("pool.txt", i, i + 1, t, split_text(t)) for i, t in enumerate(texts))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_stream_keeps_exactly_the_n_most_uncertain_of_a_full_ranking(tagger, strategy):
    pool = TEXTS * 3
    everything = select(tagger, docs(pool), 10**6, strategy, seed=7)
    top = select(tagger, docs(pool), 5, strategy, seed=7)
    assert [p.uncertainty for p in top] == [p.uncertainty for p in everything[:5]]
    assert [(p.doc, p.sentence) for p in top] == [(p.doc, p.sentence) for p in everything[:5]]
    assert all(a.uncertainty >= b.uncertainty for a, b in zip(everything, everything[1:]))
    assert select(tagger, docs(pool), 5, strategy, seed=7) == top  # deterministic for a seed
    if strategy == "random":
        assert select(tagger, docs(pool), 5, strategy, seed=8) != top


def test_uncertainties_follow_their_definitions(tagger):
    sents = [[t.text for t in s] for text in TEXTS for s in split_text(text)]
    for r in tagger.tag_sentences(sents, options_for("margin", tagger.options)):
        n = len(r.tags)
        p1, p2 = r.nbest[0][1], (r.nbest[1][1] if len(r.nbest) > 1 else 0.0)
        assert uncertainty(r, "least-confidence", None) == pytest.approx(1 - p1 ** (1 / n))
        assert uncertainty(r, "margin", None) == pytest.approx(1 - (p1 - p2))
        assert 0 <= p2 <= p1 <= 1
    for r in tagger.tag_sentences(sents, options_for("entropy", tagger.options)):
        h = [-sum(p * math.log(p) for p in m.values() if p > 0) for m in r.marginals]
        assert uncertainty(r, "entropy", None) == pytest.approx(sum(h) / len(h))
        assert 0 <= uncertainty(r, "entropy", None) <= math.log(len(r.marginals[0]))


def test_a_pool_streams_in_memory_bounded_by_n(tagger):
    import tracemalloc

    def big_pool(k):  # never held: each document is made, tagged and dropped
        for i in range(k):
            t = TEXTS[i % len(TEXTS)]
            yield Document("big.txt", i, i + 1, t, split_text(t))

    select(tagger, big_pool(200), 5, "margin")  # warm the tagger's caches
    tracemalloc.start()
    select(tagger, big_pool(2000), 5, "margin")  # several batches of 1,024 sentences
    small = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    select(tagger, big_pool(8000), 5, "margin")
    large = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert large < 1.2 * small + (1 << 20), (small, large)  # four times the pool, not four times the memory


def test_the_cli_writes_prodigy_tasks_with_the_models_spans(tiny_model, tmp_path):
    out = tmp_path / "picked.jsonl"
    r = run_cli("select", tiny_model, SAMPLE / "sample.txt", "-n", "3", "--strategy", "entropy", "-o", out)
    assert r.returncode == 0 and "picked 3 sentence(s) by entropy" in r.stderr, r.stderr
    tasks = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(tasks) == 3
    assert [t["meta"]["uncertainty"] for t in tasks] == sorted((t["meta"]["uncertainty"] for t in tasks), reverse=True)
    for t in tasks:
        assert all(t["text"][k["start"]:k["end"]] == k["text"] for k in t["tokens"])
        for s in t["spans"]:
            assert s["start"] == t["tokens"][s["token_start"]]["start"] and s["end"] == t["tokens"][s["token_end"]]["end"]
    bad = run_cli("select", tiny_model, SAMPLE / "sample.txt", "--strategy", "loudest")
    assert bad.returncode == 2 and "unknown strategy 'loudest'" in bad.stderr


@pytest.mark.parametrize("fmt", ["prodigy", "doccano", "labelstudio", "argilla"])
def test_picked_tasks_read_back_as_each_tools_format(tiny_model, tmp_path, fmt):
    from nertool.data.annotations import read

    out = tmp_path / f"picked.{'json' if fmt == 'labelstudio' else 'jsonl'}"
    r = run_cli("select", tiny_model, SAMPLE / "sample.txt", "-n", "2", "--to", fmt, "-o", out)
    assert r.returncode == 0, r.stderr
    back, _ = read(out, fmt)
    assert len(back) == 2 and all(r.text for r in back)


def test_diverse_passes_over_near_duplicates(tagger):
    pool = [TEXTS[0]] * 5 + [TEXTS[0].replace(".", " today.")] * 3 + TEXTS[1:]
    ranked = select(tagger, docs(pool), 100, "least-confidence")
    spread = select(tagger, docs(pool), 3, "least-confidence", diverse=True)
    order = [ranked.index(p) for p in spread]
    assert order == sorted(order) and order[0] == 0  # the most uncertain first, the rest in rank order
    words = [{t.lower() for t, _, _ in p.tokens} for p in spread]
    assert all(len(a & b) < 0.7 * len(a | b) for i, a in enumerate(words) for b in words[i + 1:])
    assert len(spread) == min(3, len(TEXTS))
