"""Score the last epoch's weights of training runs from their resumable state (BENCHMARKS.md
section 11): the EMA weights and, when the run averages checkpoints, the mean of the kept
epochs' weights, each with and without document context.

    .venv/bin/python scripts/experiments/score_state.py RUN [RUN ...] --data ../shared/corpora/conll2003/valid.txt \
        [--doc-context 0,1] [--threads 2]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from nertool.store.checkpoint import load_model
from nertool.training.evaluate import evaluate_bundle_file
from nertool.store import rundir


def variants(run: Path) -> dict[str, list[torch.Tensor]]:
    """Each kind of last-epoch weights in the run's state, by parameter index: ``ema`` and ``avg``."""
    state = rundir.read_state(run)
    tensors = load_file(str(run / rundir.STATE_TENSORS))
    n = sum(1 for k in tensors if k.startswith("ema."))
    out = {}
    if n:
        out["ema"] = [tensors[f"ema.{i}"] for i in range(n)]
    kept = state.get("averaged_epochs", 0)
    if kept:
        m = sum(1 for k in tensors if k.startswith("avg.0."))
        out[f"avg{kept}"] = [torch.stack([tensors[f"avg.{j}.{i}"] for j in range(kept)]).mean(0) for i in range(m)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--doc-context", default="0,1")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights = [float(x) for x in args.doc_context.split(",")]
    for run in args.runs:
        bundle = load_model(run)
        params = list(bundle.model.parameters())
        epoch = rundir.read_state(run)["epoch"]
        for kind, values in variants(run).items():
            with torch.no_grad():
                for p, v in zip(params, values, strict=True):
                    p.copy_(v)
            for data in args.data:
                f1 = [evaluate_bundle_file(bundle, data, doc_context=lam)["f1"] * 100 for lam in weights]
                cells = " ".join(f"dc{lam:g}={x:.2f}" for lam, x in zip(weights, f1))
                print(f"{run.name}\tepoch {epoch}\t{kind}\t{Path(data).name}\t{cells}", flush=True)


if __name__ == "__main__":
    main()
