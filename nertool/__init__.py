"""nertool: fast Bi-LSTM-CRF sequence labelling (NER, chunking, POS tagging).

Public API: :class:`Tagger`, :class:`Span`, :class:`Doc`, :func:`train`, :func:`load_corpus`,
:class:`Config`.
"""
__version__ = "0.1.0"

__all__ = ["Config", "Corpus", "Doc", "ModelBundle", "NertoolError", "Span", "TagOptions", "Tagger", "TrainResult",
           "__version__", "evaluate_file", "export", "load_corpus", "load_model", "score", "train"]

_LAZY = {
    "Tagger": "tag.tagger",
    "Span": "tag.tagger",
    "Doc": "tag.tagger",
    "TagOptions": "tag.options",
    "train": "training.loop",
    "TrainResult": "training.loop",
    "evaluate_file": "training.evaluate",
    "score": "training.evaluate",
    "load_corpus": "data.conll",
    "Corpus": "data.conll",
    "Config": "config",
    "ModelBundle": "store.bundle",
    "load_model": "store.loading:load",
    "export": "store.export",
    "NertoolError": "errors",
}


def __getattr__(name):  # imported on first use: `nertool --help` need not load torch
    if name in _LAZY:
        import importlib

        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(f".{module}", __name__), attr or name)
    raise AttributeError(f"module 'nertool' has no attribute {name!r}")
