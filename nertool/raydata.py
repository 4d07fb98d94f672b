"""Compatibility name for :mod:`nertool.tag.raydata` (the import path that earlier READMEs gave)."""
from nertool.tag.raydata import TagBatch, file_documents  # noqa: F401
