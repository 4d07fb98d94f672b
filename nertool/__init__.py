"""nertool: fast Bi-LSTM-CRF sequence labelling (NER, chunking, POS tagging)."""
__version__ = "0.1.0"

__all__ = ["__version__"]
