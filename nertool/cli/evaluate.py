"""``nertool evaluate``: scores of a model on a labelled file, as a table or JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.table import Table

from nertool import config as C
from nertool.cli.common import DataFormat, Mode, TagField, out, user_errors


@user_errors
def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Model directory (or bundled model name).")],
    data: Annotated[Path, typer.Argument(help="Labelled CoNLL / CoNLL-U file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print scores as one JSON object.")] = False,
    mode: Annotated[Mode, typer.Option(help="seqeval mode: default (conlleval) or strict.")] = Mode.default,
    fmt: Annotated[DataFormat, typer.Option("--format", help="File format.")] = DataFormat.auto,
    token_column: Annotated[int, typer.Option(help="Token column.")] = 0,
    tag_column: Annotated[int, typer.Option(help="Tag column (default: last).")] = -1,
    tag_field: Annotated[TagField, typer.Option(help="CoNLL-U tag field.")] = TagField.upos,
    encoding: Annotated[str, typer.Option(help="File encoding.")] = "utf-8",
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.", min=1)] = 512,
    doc_context: Annotated[float, typer.Option(help="Pull the mentions of a name within a document (-DOCSTART- to -DOCSTART-) towards one entity type, with this weight (0: off; 1 was chosen on CoNLL-2003 dev).", min=0.0)] = 0.0,
):
    """Score a model on a labelled file: span precision, recall and F1, overall and per type.

    Examples:
      nertool evaluate runs/en test.txt
      nertool evaluate runs/en test.txt --json --mode strict
      nertool evaluate en test.txt --doc-context 1
    """
    from nertool.training.evaluate import evaluate_file

    d = C.DataConfig(format=fmt.value, token_column=token_column, tag_column=tag_column, tag_field=tag_field.value,
                     encoding=encoding)
    r = evaluate_file(model, data, d, mode=mode.value, batch_size=batch_size, doc_context=doc_context)
    if as_json:
        out.print(json.dumps(r), soft_wrap=True, markup=False, highlight=False)
        return
    table = Table(title=f"{data}: {r['sentences']} sentences, {r['tokens']} tokens ({mode.value} mode)")
    for col in ("type", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for typ, s in sorted(r["per_type"].items()):
        table.add_row(typ, f"{100 * s['precision']:.2f}", f"{100 * s['recall']:.2f}", f"{100 * s['f1']:.2f}", str(s["support"]))
    support = sum(s["support"] for s in r["per_type"].values())
    table.add_row("[bold]all[/]", f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"[bold]{100 * r['f1']:.2f}[/]", str(support))
    out.print(table)
    out.print(f"token accuracy {100 * r['accuracy']:.2f}")

