"""``nertool select``: the sentences of an unlabelled pool worth labelling next, pre-annotated."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nertool.cli.common import InputFormat, err, user_errors


@user_errors
def select_cmd(
    model: Annotated[str, typer.Argument(help="Model: a bundled name, a run directory or an exported file.")],
    pool: Annotated[list[str], typer.Argument(help="Unlabelled texts: files, directories, globs or - (as nertool tag reads them).")],
    n: Annotated[int, typer.Option("-n", help="How many sentences to pick.", min=1)] = 100,
    strategy: Annotated[str, typer.Option(help="least-confidence, margin, entropy or random.")] = "least-confidence",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="JSONL file for the picked sentences (default: standard output).", dir_okay=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random strategy.")] = 0,
    input_format: Annotated[InputFormat, typer.Option(help="Pool format (auto: from each file's suffix).")] = InputFormat.auto,
    lang: Annotated[str, typer.Option(help="Language of the texts, for sentences and tokens.")] = "en",
    diverse: Annotated[bool, typer.Option("--diverse", help="Pass over near-duplicates of sentences already picked (word overlap 0.7 or more).")] = False,
    to: Annotated[str, typer.Option("--to", help="Task format: prodigy (JSONL), doccano (JSONL), labelstudio (a JSON list), argilla (JSONL).")] = "prodigy",
):
    """Rank the sentences of a pool by the model's uncertainty (exact CRF probabilities) and write
    the N most uncertain, with the model's spans and scores as suggestions, as tasks for an
    annotation tool (Prodigy, doccano, Label Studio, Argilla).

    Example:
      nertool select runs/mine pool/ -n 500 --strategy margin -o to_label.jsonl
    """
    import sys

    import orjson

    from nertool.data.inputs import open_input, read_documents, segment_documents
    from nertool.errors import NertoolError
    from nertool.fileio import atomic_write
    from nertool.tag.bulk import expand_inputs
    from nertool.tag.select import TASK_FORMATS, options_for, select, task_records
    from nertool.tag.tagger import Tagger

    if to not in TASK_FORMATS:
        raise NertoolError(f"unknown task format {to!r}; expected one of {', '.join(TASK_FORMATS)}")
    tagger = Tagger.load(model)
    opts = options_for(strategy, tagger.options.with_(lang=lang))

    def docs():
        for src, _ in expand_inputs(pool):
            stream, name, _size = open_input(src)
            try:
                yield from segment_documents(read_documents(stream, name, input_format.value, lang=None), lang, part=1024)
            finally:
                if src != "-":
                    stream.close()

    picks = select(tagger, docs(), n, strategy, seed, opts, diverse=diverse)
    records = list(task_records(picks, strategy, to))
    if to == "labelstudio":
        data = orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n"
    else:
        data = b"".join(orjson.dumps(rec) + b"\n" for rec in records)
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        with atomic_write(out, "wb", encoding=None) as f:
            f.write(data)
        err.print(f"picked {len(picks)} sentence(s) by {strategy} -> {out}", highlight=False)
