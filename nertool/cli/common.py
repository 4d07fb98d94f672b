"""What every command shares: the consoles, the choice types, one-line errors."""
from __future__ import annotations

import functools
import warnings
from enum import Enum

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from nertool import config as C
from nertool.data.inputs import INPUT_FORMATS
from nertool.errors import NertoolError
from nertool.tag.output import OUTPUT_FORMATS

err = Console(stderr=True)



out = Console(highlight=False)



state = {"debug": False}



def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum over the allowed values (defined once, in nertool.config or the reader modules)."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]



Mode = _choices("Mode", C.EVAL_MODES)



DataFormat = _choices("DataFormat", C.DATA_FORMATS)



Scheme = _choices("Scheme", C.SCHEMES)



TagField = _choices("TagField", C.TAG_FIELDS)



Optimizer = _choices("Optimizer", C.OPTIMIZERS)



Rnn = _choices("Rnn", C.RNNS)



CharEncoder = _choices("CharEncoder", C.CHAR_ENCODERS)



DropoutMask = _choices("DropoutMask", C.DROPOUT_MASKS)



InputFormat = _choices("InputFormat", INPUT_FORMATS)



OutputFormat = _choices("OutputFormat", OUTPUT_FORMATS)



def user_errors(fn):
    """Run a command; report NertoolError and library warnings as single lines."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                return fn(*args, **kwargs)
            except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
                raise typer.Exit(0) from None
            except (NertoolError, OSError) as e:  # OSError: a full disk, a read-only or unreadable path
                if state["debug"]:
                    raise
                text = str(e)
                if not isinstance(e, NertoolError):  # name the file the system refused
                    text = (f"{e.filename}: " if e.filename else "") + (e.strerror or text)
                err.print(f"[bold red]error:[/] {escape(text)}", markup=True, highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            finally:
                said = set()
                for w in caught:
                    text = str(w.message)
                    if (issubclass(w.category, UserWarning) and "nertool" in str(w.filename) or "repaired" in text) \
                            and text not in said:
                        said.add(text)  # once each, however often the library met it
                        err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    return wrapper



def _default(section: str, name: str) -> str:
    """`` (default: V)`` for a config field, for the help of the option that overrides it."""
    value = getattr(getattr(C.Config(), section), name)
    return f" (default: {value})"

