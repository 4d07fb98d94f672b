"""``nertool info`` and ``nertool corpora``: what a model is, which corpora are known."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.table import Table

from nertool.cli.common import out, user_errors


@user_errors
def info_cmd(
    model: Annotated[str, typer.Argument(help="Model directory, exported file or bundled name.")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="Print the model's config.json as is.")] = False,
    card: Annotated[bool, typer.Option("--card", help="Print the model card (the README.md saved with the model).")] = False,
):
    """Show a model's labels, scheme, sizes, training corpus, scores and (bundled models) recipe
    and tagging speed.

    Example:
      nertool info runs/en
    """
    from nertool.store.loading import model_info

    c = model_info(model)
    if card:
        from nertool.store.card import model_card
        from nertool.store.locate import resolve_model
        from nertool.store.rundir import read_card

        text = read_card(resolve_model(model)) or model_card(c, f"nertool model {Path(model).name}")
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    if as_json:
        out.print(json.dumps(c, indent=2), soft_wrap=True, markup=False, highlight=False)
        return
    from nertool.store.card import summary_rows

    t = Table(title=f"model {model}", show_header=False)
    for key, value in summary_rows(c):
        t.add_row(key, value)
    out.print(t)




@user_errors
def corpora_cmd():
    """List the well-known corpora that `nertool train NAME` can load from the hub (online).

    Example:
      nertool train conll2003 --embeddings glove-6b-50d --out runs/en
    """
    from nertool.data.conll import registry

    cols = ("name", "hub", "tags", "scheme", "local columns", "licence")
    rows = [(name, e["hub"] + (f" ({e['config']})" if e.get("config") else ""), e["tags_column"], e["scheme"],
             e["layout"], e["licence"]) for name, e in registry().items()]
    if not out.is_terminal:  # piped: tab-separated lines, nothing cut to fit a width
        print("\t".join(cols))
        for row in rows:
            print("\t".join(row))
        return
    t = Table(title="well-known corpora")
    for col in cols:
        t.add_column(col, overflow="fold")  # wrapped, never cut with an ellipsis
    for row in rows:
        t.add_row(*row)
    out.print(t)

