"""The network, its vocabularies and encoding, embeddings, decoding (CRF), document context."""
