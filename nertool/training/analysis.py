"""What kind of wrong: a model's errors on labelled sentences, by kind.

Spans come from seqeval (``get_entities``, the conlleval reading of a tag sequence). Each gold
span is matched against the predicted spans of its sentence:

- ``correct``: a predicted span with the same type and extent;
- ``type``: a predicted span with the same extent and another type (a type confusion);
- ``boundary``: an overlapping predicted span of the same type and another extent;
- ``boundary_and_type``: an overlapping predicted span of another type and extent;
- ``missed``: no predicted span overlaps it.

A predicted span that overlaps no gold span is ``spurious``. The confusion matrix counts, for
each gold span, the type of the predicted span matched to it (``O`` when missed), and for each
spurious span the row ``O``. Spans are ``seen`` when every word of theirs occurred in training.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

Span = tuple[str, int, int]  # (type, start, end exclusive)
KINDS = ("correct", "type", "boundary", "boundary_and_type", "missed", "spurious")
LENGTH_BUCKETS = ((1, 10), (11, 20), (21, 40), (41, None))


def spans(tags: Sequence[str]) -> list[Span]:
    """The spans of a tag sequence (any IOB scheme), end exclusive."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(t, a, b + 1) for t, a, b in get_entities(list(tags))]


def match(gold: list[Span], pred: list[Span]) -> tuple[list[tuple[Span, str, str]], list[Span]]:
    """``[(gold span, kind, predicted type or "O")]`` for every gold span, and the spurious
    predicted spans."""
    exact = set(gold) & set(pred)
    used: set[Span] = set(exact)
    out = []
    for g in gold:
        if g in exact:
            out.append((g, "correct", g[0]))
            continue
        overlapping = [p for p in pred if p not in exact and p[1] < g[2] and g[1] < p[2]]
        if not overlapping:
            out.append((g, "missed", "O"))
            continue
        p = max(overlapping, key=lambda q: min(q[2], g[2]) - max(q[1], g[1]))  # the largest overlap
        used.update(overlapping)
        same_extent = (p[1], p[2]) == (g[1], g[2])
        kind = "type" if same_extent else "boundary" if p[0] == g[0] else "boundary_and_type"
        out.append((g, kind, p[0]))
    spurious = [p for p in pred if p not in used and not any(p[1] < g[2] and g[1] < p[2] for g in gold)]
    return out, spurious


def _prf(correct: int, gold: int, pred: int) -> dict[str, Any]:
    p = correct / pred if pred else 0.0
    r = correct / gold if gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "gold": gold, "predicted": pred,
            "correct": correct}


def error_report(tokens: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                 seen: Sequence[Sequence[bool]] | None = None, worst: int = 20) -> dict[str, Any]:
    """Errors by kind, the type confusion matrix, span F1 for seen and unseen words and by
    sentence length, and the ``worst`` sentences (most errors first). ``seen[i][j]``: whether
    token j of sentence i occurred in training."""
    counts: Counter[str] = Counter({k: 0 for k in KINDS})
    confusion: Counter[tuple[str, str]] = Counter()
    novelty = {k: Counter() for k in ("seen", "unseen")}
    by_length = [Counter() for _ in LENGTH_BUCKETS]
    errors = []
    for i, (g_tags, p_tags) in enumerate(zip(gold, pred)):
        g_spans, p_spans = spans(g_tags), spans(p_tags)
        matched, spurious = match(g_spans, p_spans)
        counts.update(kind for _, kind, _ in matched)
        counts["spurious"] += len(spurious)
        confusion.update((g[0], t) for g, _, t in matched)
        confusion.update(("O", p[0]) for p in spurious)
        n_correct = sum(kind == "correct" for _, kind, _ in matched)
        bucket = by_length[_bucket(len(g_tags))]
        bucket.update(gold=len(g_spans), predicted=len(p_spans), correct=n_correct, sentences=1)
        if seen is not None:
            _count_novelty(novelty, seen[i], g_spans, p_spans, set(g_spans) & set(p_spans))
        n_errors = len(matched) - n_correct + len(spurious)
        if n_errors:
            errors.append((n_errors, i, matched, spurious))
    return {
        "counts": dict(counts),
        "confusion": _matrix(confusion),
        "by_novelty": {k: _prf(c["correct"], c["gold"], c["predicted"]) for k, c in novelty.items()} if seen else {},
        "by_length": [{"lengths": f"{a}-{b}" if b else f"{a}+", "sentences": c["sentences"],
                       **_prf(c["correct"], c["gold"], c["predicted"])} for (a, b), c in zip(LENGTH_BUCKETS, by_length)],
        "worst": [_worst(i, n, tokens[i], gold[i], pred[i], matched, spurious)
                  for n, i, matched, spurious in sorted(errors, key=lambda e: (-e[0], e[1]))[:worst]],
    }


def _bucket(n: int) -> int:
    return next(k for k, (a, b) in enumerate(LENGTH_BUCKETS) if n >= a and (b is None or n <= b))


def _count_novelty(novelty, seen_row, g_spans, p_spans, correct) -> None:
    group = lambda s: "seen" if all(seen_row[s[1]:s[2]]) else "unseen"  # noqa: E731
    for s in g_spans:
        novelty[group(s)]["gold"] += 1
        novelty[group(s)]["correct"] += s in correct
    for s in p_spans:
        novelty[group(s)]["predicted"] += 1


def _matrix(confusion: Counter) -> dict[str, Any]:
    types = sorted({t for pair in confusion for t in pair} - {"O"}) + ["O"]
    return {"labels": types, "rows": "gold", "columns": "predicted",
            "matrix": [[confusion[(g, p)] for p in types] for g in types]}


def _worst(i, n, tokens, gold, pred, matched, spurious) -> dict[str, Any]:
    text = lambda s: " ".join(tokens[s[1]:s[2]])  # noqa: E731
    return {"sentence": i + 1, "errors": n, "tokens": list(tokens), "gold": list(gold), "predicted": list(pred),
            "wrong": [{"kind": kind, "gold": f"{g[0]} {text(g)}", "predicted": p} for g, kind, p in matched if kind != "correct"]
            + [{"kind": "spurious", "gold": None, "predicted": f"{s[0]} {text(s)}"} for s in spurious]}


def worst_text(report: dict[str, Any]) -> str:
    """The worst sentences, for reading: each with its tokens as ``token/gold/predicted`` and its errors."""
    out = []
    for w in report["worst"]:
        out.append(f"# sentence {w['sentence']}: {w['errors']} error(s)")
        out.append(" ".join(t if g == p == "O" else f"{t}/{g}/{p}" for t, g, p in zip(w["tokens"], w["gold"], w["predicted"])))
        out += [f"  {e['kind']}: gold {e['gold'] or '-'}, predicted {e['predicted'] or '-'}" for e in w["wrong"]]
        out.append("")
    return "\n".join(out)


def write_report_plot(path, report: dict[str, Any], title: str = "") -> bool:
    """A PNG of the confusion matrix and the counts by kind; False (nothing written) without matplotlib."""
    from nertool.training.plot import pyplot, save_png

    plt = pyplot()
    if plt is None:
        return False
    conf = report["confusion"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    a1.imshow(conf["matrix"], cmap="Blues")
    a1.set_xticks(range(len(conf["labels"])), conf["labels"], rotation=45, ha="right")
    a1.set_yticks(range(len(conf["labels"])), conf["labels"])
    a1.set_xlabel("predicted type")
    a1.set_ylabel("gold type")
    top = max(max(row) for row in conf["matrix"]) or 1
    for r, row in enumerate(conf["matrix"]):
        for c, v in enumerate(row):
            a1.text(c, r, str(v), ha="center", va="center", fontsize="small", color="white" if v > top / 2 else "black")
    a1.set_title("span types (O: missed / spurious)")
    kinds = [k for k in KINDS if k != "correct"]
    a2.barh(kinds, [report["counts"][k] for k in kinds], color="tab:red")
    a2.invert_yaxis()
    a2.set_title(f"errors by kind ({report['counts']['correct']} spans correct)")
    fig.suptitle(title or "nertool evaluate --report")
    fig.tight_layout()
    save_png(fig, path)
    return True
