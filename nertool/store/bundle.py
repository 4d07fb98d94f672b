"""The bundle type: a network with its vocabularies, schemes and metadata, and its structure record."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nertool import __version__
from nertool.model.vocab import CharVocab, WordVocab

FORMAT = "nertool-model"



FORMAT_VERSION = 1



# config.json keys that describe the network itself; everything else is metadata
STRUCTURAL = frozenset({"format", "format_version", "nertool_version", "model", "labels", "scheme", "internal_scheme",
                        "n_words", "n_tuned", "n_chars", "pretrained_dim", "pretrained_reference",
                        "members", "shared_words"})



@dataclass
class ModelBundle:
    """Everything needed to tag: the network, its vocabularies and its metadata. ``model`` is a
    :class:`~nertool.model.network.BiLstmCrf`, or any :class:`~nertool.store.loading.TaggingModel` (an
    exported file)."""

    model: Any
    words: WordVocab
    chars: CharVocab
    scheme: str  # the corpus's scheme, used for output
    internal_scheme: str  # the scheme of ``model.labels``
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return self.model.labels



def structure(bundle: ModelBundle) -> dict:
    """What it takes to rebuild the network of ``bundle``: config, labels, schemes, sizes."""
    m = bundle.model
    return {
        "nertool_version": __version__,
        "model": m.config.to_dict(),
        "labels": m.labels,
        "scheme": bundle.scheme,
        "internal_scheme": bundle.internal_scheme,
        "n_words": len(bundle.words),
        "n_tuned": m.n_tuned,
        "n_chars": len(bundle.chars),
        "pretrained_dim": m.pretrained_dim,
        **({"members": m.members} if getattr(m, "members", 1) > 1 else {}),  # an ensemble (nertool.training.ensemble)
    }

