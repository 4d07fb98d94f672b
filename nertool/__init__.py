"""nertool: fast Bi-LSTM-CRF sequence labelling (NER, chunking, POS tagging).

Public API: :class:`Tagger`, :class:`Span`, :class:`Doc`, :func:`train`, :func:`load_corpus`,
:class:`Config`.
"""
__version__ = "0.1.0"

__all__ = ["Config", "Doc", "Span", "Tagger", "__version__", "load_corpus", "train"]

_LAZY = {
    "Tagger": "tagger",
    "Span": "tagger",
    "Doc": "tagger",
    "train": "training",
    "load_corpus": "conll",
    "Config": "config",
}


def __getattr__(name):  # imported on first use: `nertool --help` need not load torch
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'nertool' has no attribute {name!r}")
