"""Partial labels: ``?`` tags are unknown, and training maximises the probability of every tag
sequence consistent with the known ones (checked against enumeration), so unchecked tokens do
not teach ``O``."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import run_cli, write_synthetic_corpus
from torchcrf import CRF

from nertool.data.conll import load_corpus
from nertool.data.tags import UNKNOWN, allowed_labels
from nertool.errors import DataFormatError
from nertool.model.network import partial_nll


def _score(crf: CRF, em: torch.Tensor, path: tuple[int, ...]) -> float:
    s = crf.start_transitions[path[0]] + em[0, path[0]] + crf.end_transitions[path[-1]]
    for t in range(1, len(path)):
        s = s + crf.transitions[path[t - 1], path[t]] + em[t, path[t]]
    return float(s.detach())


@pytest.mark.parametrize("seed", range(6))
def test_the_partial_likelihood_equals_enumeration(seed):
    g = torch.Generator().manual_seed(seed)
    n_tags, batch, longest = 3 + seed % 2, 3, 4
    crf = CRF(n_tags, batch_first=True).double()
    with torch.no_grad():
        for p in (crf.start_transitions, crf.end_transitions, crf.transitions):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 2)
        crf.transitions[0, 1] = -1e4  # a forbidden transition, as constraints make them
    em = torch.randn(batch, longest, n_tags, generator=g, dtype=torch.float64) * 3
    lengths = [longest, 1, 3]
    mask = torch.arange(longest)[None] < torch.tensor(lengths)[:, None]
    allowed = torch.rand(batch, longest, n_tags, generator=g) < 0.6
    allowed[..., 2] |= ~allowed.any(-1)  # every token allows some tag
    got = partial_nll(crf, em, mask, allowed).detach()
    for b, n in enumerate(lengths):
        paths = list(itertools.product(range(n_tags), repeat=n))
        scores = [_score(crf, em[b], p) for p in paths]
        ok = [s for s, p in zip(scores, paths) if all(allowed[b, t, y] for t, y in enumerate(p))]
        f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
        want = torch.logsumexp(f64(scores), 0) - torch.logsumexp(f64(ok), 0)
        assert float(got[b]) == pytest.approx(float(want), abs=1e-9)
    # one allowed tag per token: the ordinary CRF likelihood
    tags = torch.randint(0, n_tags, (batch, longest), generator=g)
    one = torch.nn.functional.one_hot(tags, n_tags).bool()
    full = -crf(em, tags, mask=mask, reduction="none")
    assert torch.allclose(partial_nll(crf, em, mask, one).detach(), full.detach(), atol=1e-9)


def test_allowed_labels_follow_the_known_neighbours():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    idx = lambda *names: sorted(labels.index(n) for n in names)  # noqa: E731
    every = list(range(len(labels)))
    cands = ["O", "B-PER", "I-PER"]
    assert allowed_labels(["B-PER", "I-PER", "O"], "IOB2", "BIOES", labels, cands) == \
        [idx("B-PER"), idx("E-PER"), idx("O")]
    assert allowed_labels(["B-PER", UNKNOWN, "O"], "IOB2", "BIOES", labels, cands) == \
        [idx("B-PER", "S-PER"), every, idx("O")]
    assert allowed_labels([UNKNOWN, "I-PER", UNKNOWN], "IOB2", "BIOES", labels, cands)[1] == \
        idx("I-PER", "E-PER", "B-PER", "S-PER")
    assert allowed_labels(["O", UNKNOWN], "IOB2", "IOB2", ["O", "B-PER", "I-PER"], cands) == [[0], [0, 1, 2]]


def test_question_marks_load_as_unknown_and_only_in_training(tmp_path):
    train = tmp_path / "train.conll"
    train.write_text("Anna B-PER\nmet ?\nHiro ?\n\nOslo B-LOC\nis O\n\n", encoding="utf-8")
    dev = tmp_path / "dev.conll"
    dev.write_text("Anna B-PER\nmet O\n\n", encoding="utf-8")
    corpus = load_corpus(train, dev)
    assert "?" not in corpus.labels and corpus.scheme == "IOB2"
    assert corpus.sentences("train")[0] == (["Anna", "met", "Hiro"], ["B-PER", UNKNOWN, UNKNOWN])
    with pytest.raises(DataFormatError, match="for training data only"):
        load_corpus(train, train)


def _recall(run, test) -> float:
    import json

    r = run_cli("evaluate", run, test, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["per_type"]["PER"]["recall"]


def test_unchecked_names_do_not_teach_o(tmp_path):
    """Half the sentences have their names unchecked: as ``?`` the model still learns PER; written
    as ``O`` (what a tool without partial labels forces) it learns to miss them."""
    src = write_synthetic_corpus(tmp_path / "full.conll", 240, length=12, seed=3)
    test = write_synthetic_corpus(tmp_path / "test.conll", 80, length=12, seed=4)
    blocks = src.read_text(encoding="utf-8").strip().split("\n\n")
    config = tmp_path / "tiny.toml"
    config.write_text("[model]\nhidden_size = 16\nchar_hidden = 8\n[train]\nepochs = 10\nbatch_size = 8\nlr = 0.01\nthreads = 1\n"
                      "seed = 1\npatience = 0\nsmall_corpus = \"off\"\n", encoding="utf-8")
    for variant, fill in (("partial", UNKNOWN), ("as_o", "O")):
        out = []
        for k, block in enumerate(blocks):
            rows = [line.split() for line in block.splitlines()]
            if k % 4 != 0:  # three in four sentences: names unchecked
                rows = [[w, fill if t.endswith("PER") else t] for w, t in rows]
            out.append("\n".join(" ".join(r) for r in rows))
        (tmp_path / f"{variant}.conll").write_text("\n\n".join(out) + "\n\n", encoding="utf-8")
        r = run_cli("train", tmp_path / f"{variant}.conll", "--out", tmp_path / variant, "--config", config)
        assert r.returncode == 0, r.stderr
    partial, as_o = _recall(tmp_path / "partial", test), _recall(tmp_path / "as_o", test)
    assert partial > 0.9 and partial > as_o + 0.2, (partial, as_o)
    assert math.isfinite(partial)


def _task(text: str, span: tuple[int, int, str], answer: str) -> str:
    import json

    a, b, label = span
    return json.dumps({"text": text, "spans": [{"start": a, "end": b, "label": label}], "answer": answer}) + "\n"


def test_prodigy_binary_answers_are_partial_annotations(tmp_path):
    """ner.teach's answers: the accepted spans of all tasks on one text are known, every other
    token is unknown (never "O"); a rejected suggestion is left out and counted."""
    from nertool.data.annotations import read, write
    from nertool.errors import NertoolError

    text = "Anna Berg met Hiro in Oslo ."
    path = tmp_path / "teach.jsonl"
    path.write_text(_task(text, (0, 9, "PER"), "accept") + _task(text, (22, 26, "LOC"), "accept")
                    + _task(text, (14, 18, "ORG"), "reject") + _task("Paris is big .", (0, 5, "LOC"), "ignore"),
                    encoding="utf-8")
    records, skipped = read(path, "prodigy-binary")
    assert skipped == 2 and len(records) == 1
    assert records[0].tags() == ["B-PER", "I-PER", UNKNOWN, UNKNOWN, UNKNOWN, "B-LOC", UNKNOWN]
    read_as_manual, _ = read(path, "prodigy")  # the same file as complete annotations: one record a task
    assert read_as_manual[0].tags()[2:] == ["O"] * 5
    again = tmp_path / "again.jsonl"
    write(again, records, "prodigy-binary")  # one accepted task a span
    assert [r.spans for r in read(again, "prodigy-binary")[0]] == [records[0].spans]
    with pytest.raises(NertoolError, match="partial annotations"):
        write(tmp_path / "x.jsonl", records, "doccano")
    clash = tmp_path / "clash.jsonl"
    clash.write_text(_task(text, (0, 9, "PER"), "accept") + _task(text, (5, 9, "ORG"), "accept"), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"clash.jsonl:2: .*overlaps"):
        read(clash, "prodigy-binary")
    dev = tmp_path / "dev.conll"
    dev.write_text("Anna B-PER\nmet O\n\n", encoding="utf-8")
    from nertool.config import DataConfig

    corpus = load_corpus(path, dev, data=DataConfig(format="prodigy-binary"))  # dev: CoNLL, read as such
    assert corpus.sentences("train")[0][1] == records[0].tags()
