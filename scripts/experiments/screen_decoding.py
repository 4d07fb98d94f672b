"""Screen decoding rules on a labelled CoNLL file (BENCHMARKS.md section 10): each model's
emissions are computed once, then every rule is decoded and scored (span F1, seqeval).

    .venv/bin/python scripts/experiments/screen_decoding.py ../shared/corpora/conll2003/valid.txt RUN [RUN ...] \
        [--rules mean:0,mean:1,multi:2,loo:1,iter2:1,posterior:1,gaz:0.5] [--gazetteer TRAIN]

Rules (``kind:λ``): ``mean`` is `--doc-context λ` as shipped (λ 0: plain Viterbi); ``multi``
gives names seen once in their document no bias; ``loo`` averages over a mention's other
mentions only; ``iter2`` applies ``mean`` twice; ``posterior`` decodes the constrained sequence
of the largest summed log marginals after ``mean``; ``gaz`` adds ``λ`` times the log prior of
`scripts/experiments/gazetteer_prior.py` (built from ``--gazetteer``, the runs' training file) to ``mean:1``
(BENCHMARKS.md section 12); ``recase`` / ``recase2`` (λ: the document-context weight) decode
all-upper-case sentences recased from their document / and the training file (section 12).
"""
from __future__ import annotations

import argparse

import torch

from nertool.data import tags as tagmod
from nertool.model.encoding import Encoder
from nertool.store.checkpoint import load_model
from nertool.data.conll import document_ids, read_conll
from nertool.model.context import document_bias, name_groups, offsets, place
from nertool.model.decoding import constraint_bias, marginals, viterbi
from nertool.training.evaluate import score
import gazetteer_prior as gazmod  # scripts/experiments/gazetteer_prior.py


def bias_of(labels, margs, toks, docs, kind: str, lam: float) -> torch.Tensor:
    """(tokens, num_tags) document-context biases of rule ``kind`` with weight ``lam``; ``mean``
    is the shipped :func:`nertool.model.context.document_bias` itself."""
    if kind == "mean":
        return document_bias(labels, margs, toks, docs, lam)
    types = [tagmod.split_tag(label)[1] or "O" for label in labels]
    tid = {t: k for k, t in enumerate(dict.fromkeys(types))}
    tag_types = torch.tensor([tid[t] for t in types])
    flat = torch.cat(margs)  # shape: (tokens, num_tags)
    groups = torch.tensor(name_groups(toks, docs))
    mass = flat.new_zeros(flat.shape[0], len(tid)).index_add_(1, tag_types, flat)  # shape: (tokens, types)
    bias = flat.new_zeros(flat.shape)
    member = groups >= 0
    if lam == 0 or not bool(member.any()):
        return bias
    g = groups[member]
    n_groups = int(g.max()) + 1
    sums = flat.new_zeros(n_groups, len(tid)).index_add_(0, g, mass[member])
    counts = torch.bincount(g, minlength=n_groups).to(flat.dtype)
    c = counts[g].unsqueeze(1)
    if kind == "loo":
        b = lam * torch.log(((sums[g] - mass[member]) / (c - 1).clamp(min=1)).clamp(min=0) + 1e-6) * (c > 1)
    else:  # multi: the shipped mean, but names seen once in their document get no bias
        b = lam * torch.log(sums[g] / c + 1e-6) * (c > 1)
    bias[member] = b[:, tag_types]
    return bias


def all_caps(tokens) -> bool:
    """At least two tokens with letters, and no lower-case letter in any of them."""
    lettered = [t for t in tokens if any(c.isalpha() for c in t)]
    return len(lettered) >= 2 and all(t.upper() == t for t in lettered)


def usual_forms(sentences, documents=None) -> dict:
    """The most frequent form of each lower-cased token outside all-upper-case sentences (ties:
    the first seen), per document when ``documents`` is given (keys ``(doc, lower)``)."""
    counts: dict = {}
    for i, toks in enumerate(sentences):
        if all_caps(toks):
            continue
        for t in toks:
            key = (documents[i], t.lower()) if documents is not None else t.lower()
            per = counts.setdefault(key, {})
            per[t] = per.get(t, 0) + 1
    return {k: max(per, key=per.get) for k, per in counts.items()}


def recased(sentences, documents, training_forms=None) -> list:
    """``sentences`` with the tokens of all-upper-case sentences replaced by their document's
    usual form, else (with ``training_forms``) the training data's, else kept (section 12)."""
    in_doc = usual_forms(sentences, documents)
    out = []
    for i, toks in enumerate(sentences):
        if not all_caps(toks):
            out.append(toks)
            continue
        new = []
        for t in toks:
            form = in_doc.get((documents[i], t.lower()))
            if form is None and training_forms is not None:
                form = training_forms.get(t.lower())
            new.append(form or t)
        out.append(new)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--rules", default="mean:0,mean:1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gazetteer", help="labelled training file the `gaz` rules build their gazetteer from")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rules = [(k, float(v)) for k, v in (r.split(":") for r in args.rules.split(","))]
    sents = read_conll(args.data)
    docs = document_ids(args.data)
    toks, gold = [t for t, _ in sents], [g for _, g in sents]
    at = offsets(toks)
    if not args.gazetteer and any(kind in ("gaz", "recase2") for kind, _ in rules):
        ap.error("the gaz and recase2 rules need --gazetteer TRAIN")
    train = read_conll(args.gazetteer) if args.gazetteer else None
    gaz = gazmod.build(train, "IOB2") if train else None
    variants = {}  # the recased texts the `recase` rules ask for
    if any(kind == "recase" for kind, _ in rules):
        variants["recase"] = recased(toks, docs)
    if any(kind == "recase2" for kind, _ in rules):
        variants["recase2"] = recased(toks, docs, usual_forms([t for t, _ in train]))
    for k, v in variants.items():
        print(k, "changes", sum(a != b for x, y in zip(toks, v) for a, b in zip(x, y)), "tokens", flush=True)
    res: dict = {}
    for run in args.runs:
        b = load_model(run)
        m = b.model.eval()
        enc = Encoder(b.words, b.chars, m.config.max_word_chars)
        decode = tagmod.id_decoder(b.labels, b.internal_scheme, b.scheme)
        st, en, tr = m.transition_scores()
        cs, ce, ct = constraint_bias(b.internal_scheme, b.labels)
        with torch.inference_mode():
            def score_all(sentences):
                return [(bt, m.emissions(bt.words, bt.chars, bt.char_index, bt.mask))
                        for bt in enc.batches(enc.encode(sentences), 512, max_tokens=512 * 50)]

            scored = score_all(toks)
            rescored = {k: score_all(v) for k, v in variants.items()}

            def margs_of(pairs):
                per: list = [None] * len(toks)
                for bt, em in pairs:
                    p = marginals(em, bt.mask, st, en, tr)
                    for k, i in enumerate(bt.index):
                        per[i] = p[k, : len(toks[i])]
                return per

            base = margs_of(scored)
            for kind, lam in rules:
                pairs = rescored.get(kind, scored)  # the recased text's emissions for `recase` rules
                if kind in rescored:  # the shipped `mean` rule over them
                    bias = document_bias(b.labels, margs_of(pairs), variants[kind], docs, lam)
                elif kind == "gaz":
                    bias = bias_of(b.labels, base, toks, docs, "mean", 1.0) + gazmod.bias(gaz, b.labels, toks, lam)
                else:
                    bias = bias_of(b.labels, base, toks, docs, "mean" if kind in ("iter2", "posterior") else kind, lam)
                if kind == "iter2":
                    once = [(bt, place(bias, em, bt.index, at)) for bt, em in scored]
                    bias = bias_of(b.labels, margs_of(once), toks, docs, "mean", lam)
                out: list = [None] * len(toks)
                for bt, em in pairs:
                    adjusted = place(bias, em, bt.index, at)
                    if kind == "posterior":
                        post = marginals(adjusted, bt.mask, st, en, tr)
                        best, _ = viterbi(torch.log(post + 1e-12), bt.mask, cs, ce, ct)
                    else:
                        best, _ = viterbi(adjusted, bt.mask, st, en, tr)
                    for row, i in zip(best.tolist(), bt.index):
                        out[i] = decode(row[: len(toks[i])])
                f = score(gold, out, b.scheme)["f1"]
                res.setdefault((kind, lam), []).append(f)
                print(run, kind, lam, f"{100 * f:.2f}", flush=True)
    for (kind, lam), fs in res.items():
        print(f"{kind}:{lam:g} mean {100 * sum(fs) / len(fs):.3f}", [round(100 * f, 2) for f in fs])


if __name__ == "__main__":
    main()
