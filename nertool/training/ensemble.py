"""Ensembles: several models of one recipe (trained on the same data, differing in seed) become
one model whose emissions and CRF scores are the members' means. It tags, scores, gives
marginals and n-best, exports and saves like any model; it costs a member's time per member."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from nertool.errors import ModelError
from nertool.model.network import PRETRAINED, BiLstmCrf
from nertool.store.checkpoint import ModelBundle, structure

_EMITTER = "emitter."


def combine(bundles: Sequence[ModelBundle], names: Sequence[str] | None = None) -> ModelBundle:
    """One :class:`ModelBundle` averaging ``bundles``: they must share their network configuration,
    labels, vocabularies and pretrained table (models of one recipe on one training set).
    ``names`` (default ``member 1``, ...) name them in errors and in the metadata."""
    names = list(names or [f"member {i + 1}" for i in range(len(bundles))])
    _check_members(bundles, names)
    first = bundles[0]
    m = first.model
    k = len(bundles)
    ens = BiLstmCrf(m.config, len(first.words), m.n_tuned, len(first.chars), m.labels, first.internal_scheme,
                    m.pretrained_dim, members=k)
    states = [b.model.state_dict() for b in bundles]
    state: dict[str, torch.Tensor] = {PRETRAINED: m.emitter.pretrained.detach().clone()}
    for i, member in enumerate(states):
        for key, v in member.items():
            if key.startswith(_EMITTER) and key != PRETRAINED:
                state[f"{_EMITTER}members.{i}.{key[len(_EMITTER):]}"] = v.detach().clone()
    for key in states[0]:
        if not key.startswith(_EMITTER):  # the CRF's stored scores (constraint masks are the same for all)
            values = [member[key] for member in states]
            state[key] = values[0].clone() if not values[0].is_floating_point() else torch.stack(values).mean(0)
    ens.load_state_dict(state)
    ens.eval()
    meta = {key: first.meta[key] for key in ("corpus", "data", "train", "trained_with") if key in first.meta}
    meta["ensemble"] = {
        "members": [str(n) for n in names],
        "member_scores": [b.meta.get("scores", {}).get("test") for b in bundles],
        "member_machines": [b.meta.get("machine") for b in bundles],  # None for models that predate the record
    }
    return ModelBundle(ens, first.words, first.chars, first.scheme, first.internal_scheme, meta)


def _check_members(bundles: Sequence[ModelBundle], names: list[str]) -> None:
    """ModelError unless ``bundles`` are two or more single networks of one recipe and one training set."""
    if len(bundles) < 2:
        raise ModelError("an ensemble needs at least two models")
    for name, b in zip(names, bundles):
        if not isinstance(b.model, BiLstmCrf):
            raise ModelError(f"{name}: an exported file; combine model directories")
        if b.model.members > 1:
            raise ModelError(f"{name}: already an ensemble; combine its members instead")
    first = bundles[0]
    shape = {k: v for k, v in structure(first).items() if k != "nertool_version"}
    index = first.words.index()
    for name, b in zip(names[1:], bundles[1:]):
        mine = {k: v for k, v in structure(b).items() if k != "nertool_version"}
        differs = sorted(k for k in set(shape) | set(mine) if shape.get(k) != mine.get(k))
        if differs:
            raise ModelError(f"{name}: differs from {names[0]} in {', '.join(differs)}; an ensemble combines models of one recipe")
        if b.words.index() != index or b.words.norm != first.words.norm or b.chars.chars != first.chars.chars:
            raise ModelError(f"{name}: its vocabulary differs from {names[0]}'s (trained on other data?)")
        if not torch.equal(b.model.emitter.pretrained, first.model.emitter.pretrained):
            raise ModelError(f"{name}: its pretrained vectors differ from {names[0]}'s")



def combine_models(sources: Sequence[str | Path], out: str | Path, refer: bool = False, half: bool = False,
                   test: str | Path | None = None) -> ModelBundle:
    """Load ``sources`` (model directories or bundled names), :func:`combine` them and save the
    ensemble to the model directory ``out`` (``refer``/``half`` as in
    :func:`~nertool.store.checkpoint.save_model`), with its scores on the labelled file ``test`` when
    given. Returns the ensemble as loaded back from ``out``."""
    from nertool.store.checkpoint import load_model, save_model
    from nertool.store.locate import resolve_model

    paths = [resolve_model(s) for s in sources]
    bundles = []
    for p in paths:
        if not p.is_dir():
            raise ModelError(f"{p}: an exported file; combine model directories")
        bundles.append(load_model(p))
    ens = combine(bundles, [str(s) for s in sources])
    if test is not None:
        from nertool.training.evaluate import evaluate_bundle_file

        r = evaluate_bundle_file(ens, test)
        corpus = dict(ens.meta.get("corpus") or {})
        corpus["test"] = str(test)
        corpus["sentences"] = {**(corpus.get("sentences") or {}), "test": r["sentences"]}
        ens.meta["corpus"] = corpus
        ens.meta["scores"] = {"test": {k: r[k] for k in ("precision", "recall", "f1", "accuracy")}}
    save_model(out, ens, half=half, refer=refer)
    return load_model(out)
