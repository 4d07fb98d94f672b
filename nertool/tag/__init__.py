"""Tagging: the tagger (the one inference path), options, output formats, engines, bulk jobs."""
