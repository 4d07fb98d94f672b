"""Document context at decoding: the mentions of a name within one document are pulled towards
one entity type. A first pass gives every token's CRF marginals; :func:`document_bias` turns
them into emission biases (:func:`nertool.model.decoding.type_consistency`) for the final decoding."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nertool.data import tags as tagmod
from nertool.model.decoding import type_consistency


def check_weight(weight: float, scheme: str) -> None:
    """ConfigError unless ``weight`` is a usable document-context weight for a model whose
    corpus scheme is ``scheme`` (entity types are needed when it is > 0)."""
    from nertool.errors import ConfigError

    if not (math.isfinite(weight) and weight >= 0):
        raise ConfigError(f"doc_context must be a finite non-negative number, got {weight}")
    if weight and scheme == "none":
        raise ConfigError("document context needs entity tags (a chunk scheme); this model's labels have none")


def name_groups(sentences: Sequence[Sequence[str]], documents: Sequence[int]) -> list[int]:
    """One group id per token (in sentence order): the tokens that start with an upper-case
    letter and have the same lower-cased form in the same document share one; ``-1`` for the
    others. ``documents`` gives each sentence's document."""
    if len(documents) != len(sentences):
        raise ValueError(f"{len(documents)} document ids for {len(sentences)} sentences")
    ids: dict[tuple[int, str], int] = {}
    out: list[int] = []
    for toks, doc in zip(sentences, documents):
        out.extend(ids.setdefault((doc, t.lower()), len(ids)) if t[:1].isupper() else -1 for t in toks)
    return out


def document_bias(labels: Sequence[str], marginals: Sequence[torch.Tensor], sentences: Sequence[Sequence[str]],
                  documents: Sequence[int], weight: float) -> torch.Tensor:
    """(tokens, num_tags) emission biases, tokens in sentence order. ``marginals[i]`` is sentence
    ``i``'s (len, num_tags) tag marginals; ``labels`` the model's tags (their chunk types, and
    ``O``, are the types that mentions are pulled towards)."""
    types = [tagmod.split_tag(label)[1] or "O" for label in labels]
    type_ids = {t: k for k, t in enumerate(dict.fromkeys(types))}
    groups = name_groups(sentences, documents)
    if not marginals:
        return torch.zeros(0, len(labels))
    device = marginals[0].device
    tag_types = torch.tensor([type_ids[t] for t in types], device=device)
    flat = torch.cat(list(marginals))
    return type_consistency(flat, torch.tensor(groups, dtype=torch.long, device=device), tag_types, len(type_ids), weight)


def place(bias: torch.Tensor, em: torch.Tensor, index: Sequence[int], offsets: Sequence[int]) -> torch.Tensor:
    """``em`` (batch, seq_len, num_tags) of the sentences ``index`` plus their rows of ``bias``;
    sentence ``i``'s tokens are rows ``offsets[i]:offsets[i + 1]``."""
    em = em.clone()
    for r, i in enumerate(index):
        em[r, : offsets[i + 1] - offsets[i]] += bias[offsets[i] : offsets[i + 1]]
    return em


def offsets(sentences: Sequence[Sequence[str]]) -> list[int]:
    """Where each sentence's tokens start in the flat token order, and the total at the end."""
    out = [0]
    for s in sentences:
        out.append(out[-1] + len(s))
    return out


def adjusted_emissions(labels: Sequence[str], scored: Sequence[tuple], sentences: Sequence[Sequence[str]],
                       documents: Sequence[int], weight: float,
                       transitions: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """The emissions of every batch with the document-context biases added. ``scored`` holds
    ``(batch, emissions)`` pairs (a :class:`~nertool.model.encoding.Batch` with ``index`` and ``mask``,
    and its (batch, seq_len, num_tags) scores) covering ``sentences``; ``transitions`` are the
    model's ``(start, end, transitions)``."""
    from nertool.model.decoding import marginals

    per_sentence: list = [None] * len(sentences)
    for batch, em in scored:
        p = marginals(em, batch.mask, *transitions)  # shape: (batch, seq_len, num_tags)
        for r, i in enumerate(batch.index):
            per_sentence[i] = p[r, : len(sentences[i])]
    bias = document_bias(labels, per_sentence, sentences, documents, weight)
    at = offsets(sentences)
    return [place(bias, em, batch.index, at) for batch, em in scored]
