"""``nertool convert``: annotations from one tool's format to another's (nertool.data.annotations)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nertool.cli.common import err, user_errors


@user_errors
def convert_cmd(
    source: Annotated[Path, typer.Argument(help="Annotations to read.", exists=True, dir_okay=False)],
    target: Annotated[Path, typer.Argument(help="File to write.", dir_okay=False)],
    from_fmt: Annotated[str, typer.Option("--from", help="prodigy, prodigy-binary (ner.teach answers: partial annotations), doccano, labelstudio, argilla, conll, spacy (a DocBin), or auto (from the content; .spacy: a DocBin).")] = "auto",
    to_fmt: Annotated[str, typer.Option("--to", help="prodigy, doccano, labelstudio, argilla, conll or spacy (auto: .conll -> conll, .json -> labelstudio, .spacy -> spacy).")] = "auto",
    lang: Annotated[str, typer.Option(help="Tokenisation of texts that come without tokens.")] = "en",
):
    """Convert annotations between Prodigy, doccano, Label Studio, Argilla, CoNLL and spaCy DocBin, aligning
    character spans to tokens (a span off the token boundaries is an error naming its line).

    Example:
      nertool convert export.json train.conll          # Label Studio to CoNLL
      nertool convert train.conll tasks.jsonl --to prodigy
      nertool convert train.spacy train.conll          # a spaCy DocBin to CoNLL
    """
    from nertool.data.annotations import read, write
    from nertool.errors import NertoolError

    if to_fmt == "auto":
        to_fmt = {".conll": "conll", ".json": "labelstudio", ".spacy": "spacy"}.get(target.suffix.lower(), "")
        if not to_fmt:
            raise NertoolError(f"{target}: give --to (prodigy, doccano, labelstudio, argilla, conll or spacy)")
    if target.resolve() == source.resolve():
        raise NertoolError(f"{target}: the output would replace the input; choose another output")
    records, skipped = read(source, from_fmt, lang)
    write(target, records, to_fmt)
    spans = sum(len(r.spans) for r in records)
    note = f" ({skipped} rejected or ignored task(s) left out)" if skipped else ""
    err.print(f"converted {len(records)} record(s), {spans} span(s) -> {target} ({to_fmt}){note}", highlight=False)
