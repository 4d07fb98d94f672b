"""The ``nertool`` command line: the typer app and its commands, one module each.

Every :class:`~nertool.errors.NertoolError` becomes one line on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from nertool.cli.common import out, state
from nertool.cli.convert import convert_cmd
from nertool.cli.evaluate import evaluate_cmd
from nertool.cli.info import corpora_cmd, info_cmd
from nertool.cli.models import compact_cmd, ensemble_cmd, export_cmd
from nertool.cli.select import select_cmd
from nertool.cli.serve import serve_cmd
from nertool.cli.tag import MetavarUsage, tag_cmd
from nertool.cli.train import train_cmd
from nertool.cli.tune import tune_cmd

app = typer.Typer(
    name="nertool",
    help="Bi-LSTM-CRF sequence labelling: train, evaluate and tag (NER, chunking, POS).",
    epilog=(
        "Examples:\n\n"
        "  nertool tag notes.txt --format inline       (the bundled English model)\n\n"
        "  nertool train train.txt --dev valid.txt --embeddings glove-6b-50d --out runs/en\n\n"
        "  nertool tune train.txt --dev valid.txt --budget 60m --out tuned/\n\n"
        "  nertool evaluate runs/en test.txt --report\n\n"
        "  nertool export runs/en tagger.pt\n\n"
        "  nertool serve en-fast --port 8080\n\n"
        "Run nertool COMMAND --help for each command's options and examples."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(train_cmd)
app.command("tune", cls=MetavarUsage)(tune_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("tag", cls=MetavarUsage)(tag_cmd)
app.command("serve")(serve_cmd)
app.command("select")(select_cmd)
app.command("convert")(convert_cmd)
app.command("info")(info_cmd)
app.command("export")(export_cmd)
app.command("compact")(compact_cmd)
app.command("ensemble")(ensemble_cmd)
app.command("corpora")(corpora_cmd)


def _version(value: bool) -> None:
    if value:
        from nertool import __version__

        out.print(f"nertool {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False):
    state["debug"] = debug


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C: temporary files are removed, finished outputs stay
    raise SystemExit(128 + signum)


def main() -> None:
    import os
    import signal

    launcher = os.getppid()
    signal.signal(signal.SIGTERM, _terminate)
    if "LOCAL_RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker
        from nertool.runtime import die_with_parent

        if not die_with_parent(launcher):
            raise SystemExit(128 + signal.SIGKILL)  # its run is already over
    raise SystemExit(_run_app())


def _run_app() -> int:
    """Run the app; a usage error (a missing argument, a bad option value, an unknown command) is
    one line on stderr with exit code 2, as every other error is, not typer's boxed panel."""
    from nertool.cli.common import err

    try:
        code = app(prog_name="nertool", standalone_mode=False)
    except typer.Abort:
        err.print("aborted", highlight=False)
        return 1
    except Exception as e:  # click's exceptions, as typer vendors them, carry these three
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # `nertool` alone: the help
            ctx.get_help()
            return 0
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"[bold red]error:[/] {escape(e.format_message())}{escape(where)}", markup=True,
                  highlight=False, soft_wrap=True)
        return e.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
