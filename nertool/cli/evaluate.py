"""``nertool evaluate``: scores of a model on a labelled file, as a table or JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.table import Table

from nertool import config as C
from nertool.cli.common import DataFormat, Mode, TagField, err, out, user_errors


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
    report: Annotated[bool, typer.Option("--report", help="Also the errors by kind: boundary, type confusions (a matrix), missed, spurious; F1 for spans of words seen and unseen in training, and by sentence length; the worst sentences.")] = False,
    report_dir: Annotated[Optional[Path], typer.Option("--report-dir", help="With --report: write report.json, report.png (confusion matrix, counts by kind) and worst.txt (the 20 worst sentences) here.", file_okay=False)] = None,
):
    """Score a model on a labelled file: span precision, recall and F1, overall and per type.

    Examples:
      nertool evaluate runs/en test.txt
      nertool evaluate runs/en test.txt --json --mode strict
      nertool evaluate en test.txt --doc-context 1
      nertool evaluate runs/en test.txt --report --report-dir runs/en/report
    """
    from nertool.training.evaluate import evaluate_file

    d = C.DataConfig(format=fmt.value, token_column=token_column, tag_column=tag_column, tag_field=tag_field.value,
                     encoding=encoding)
    r = evaluate_file(model, data, d, mode=mode.value, batch_size=batch_size, doc_context=doc_context,
                      report=report or report_dir is not None)
    if report_dir is not None and "report" in r:
        _write_report(r["report"], report_dir, f"{model} on {data.name}")
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
    if "report" in r:
        _print_report(r["report"])
        if report_dir is not None:
            err.print(f"wrote {report_dir}/report.json, report.png, worst.txt", highlight=False)


def _write_report(rep: dict, directory: Path, title: str) -> None:
    from nertool.fileio import atomic_write_text
    from nertool.training.analysis import worst_text, write_report_plot

    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / "report.json", json.dumps(rep, indent=1) + "\n")
    atomic_write_text(directory / "worst.txt", worst_text(rep))
    write_report_plot(directory / "report.png", rep, title)


def _print_report(rep: dict) -> None:
    kinds = Table(title="spans by outcome")
    kinds.add_column("outcome")
    kinds.add_column("spans", justify="right")
    for kind, n in rep["counts"].items():
        kinds.add_row(kind.replace("_", " "), str(n))
    out.print(kinds)
    conf = rep["confusion"]
    matrix = Table(title="gold type (rows) against predicted type (columns); O: missed or spurious")
    matrix.add_column("gold")
    for label in conf["labels"]:
        matrix.add_column(label, justify="right")
    for label, row in zip(conf["labels"], conf["matrix"]):
        matrix.add_row(label, *map(str, row))
    out.print(matrix)
    groups = Table(title="span F1 by group")
    for col in ("group", "precision", "recall", "F1", "gold spans", "predicted"):
        groups.add_column(col, justify="left" if col == "group" else "right")
    rows = [(f"words {k} in training", v) for k, v in rep["by_novelty"].items()]
    rows += [(f"sentences of {b['lengths']} tokens", b) for b in rep["by_length"]]
    for name, v in rows:
        groups.add_row(name, f"{100 * v['precision']:.2f}", f"{100 * v['recall']:.2f}", f"{100 * v['f1']:.2f}",
                       str(v["gold"]), str(v["predicted"]))
    out.print(groups)

