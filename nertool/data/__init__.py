"""Corpora, tag schemes, text and its segmentation, tagging inputs."""
