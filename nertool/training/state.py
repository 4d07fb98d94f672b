"""The resumable state of a run: where the loop stands, checks that a resume may go on."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from nertool.config import Config
from nertool.data.conll import Sentence
from nertool.errors import NertoolError
from nertool.model.network import BiLstmCrf
from nertool.store import rundir
from nertool.training.optim import Optimisation


@dataclass
class LoopState:
    """Where a run stands after an epoch; with the model and :class:`Optimisation` it is the
    resumable training state (tensors in safetensors, the rest in JSON, nothing pickled)."""

    config: dict[str, Any]
    epoch: int = 0
    best_f1: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    corpus: dict[str, str | None] | None = None  # fingerprints of the train and dev sentences
    stopped_by: str | None = None  # set when the run ended (epochs, patience, time)
    processes: int = 1  # how many processes trained it (the config's batch size is per process)

    @staticmethod
    def peek(out: Path) -> dict[str, Any]:
        """The JSON half of the snapshot in ``out``, read before anything is loaded."""
        return rundir.read_state(out)

    def save(self, out: Path, model: BiLstmCrf, o: Optimisation) -> None:
        """Write the snapshot; the JSON goes last and names the epoch, so a snapshot is only used
        once both files are complete."""
        tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.trained_state().items()}
        opt_state = o.opt.state_dict()
        for i, st in opt_state["state"].items():
            for k, v in st.items():
                tensors[f"opt.{i}.{k}"] = (v.detach().reshape(-1) if v.dim() == 0 else v.detach()).contiguous().cpu()
        if o.ema is not None:
            for i, t in enumerate(o.ema.shadow):
                tensors[f"ema.{i}"] = t.contiguous().cpu()
        if o.avg is not None:
            for j, kept in enumerate(o.avg.kept):
                for i, t in enumerate(kept):
                    tensors[f"avg.{j}.{i}"] = t.contiguous().cpu()
        tensors["rng.torch"] = torch.get_rng_state()
        rundir.write_state(out, self._json(o), st_save(tensors))

    def save_json(self, out: Path, o: Optimisation) -> None:
        """Write the JSON half of the snapshot alone (the tensors of the same step are on disk)."""
        rundir.write_state(out, self._json(o))

    def _json(self, o: Optimisation) -> dict[str, Any]:
        opt_state = o.opt.state_dict()
        version, internal, gauss = o.rng.getstate()
        return {
            **asdict(self),
            "param_groups": opt_state["param_groups"],
            "opt_keys": {str(i): sorted(st) for i, st in opt_state["state"].items()},
            # 0-d state tensors (Adam's step; NAdam's mu_product too) are stored flat: their names
            "opt_scalars": sorted({k for st in opt_state["state"].values() for k, v in st.items() if v.dim() == 0}),
            "sched": {k: v for k, v in o.sched.state_dict().items() if k != "lr_lambdas"},
            "ema_steps": o.ema.steps if o.ema is not None else 0,
            "averaged_epochs": len(o.avg.kept) if o.avg is not None else 0,
            "rng_python": [version, list(internal), gauss],
        }

    @classmethod
    def load(cls, out: Path, model: BiLstmCrf, o: Optimisation, state: dict[str, Any] | None = None) -> "LoopState":
        """Read the snapshot in ``out`` into ``model`` and ``o``; returns the loop state. ``state``:
        its JSON half when the caller has read it already (:meth:`peek`)."""
        if state is None:
            state = cls.peek(out)
        try:
            tensors = st_load(rundir.read_state_tensors(out))
        except (ValueError, SafetensorError) as e:
            raise NertoolError(f"{out}: cannot resume, corrupt training state: {e}") from None
        model.load_trained_state({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        opt_state: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
        scalars = set(state.get("opt_scalars", ["step"]))  # older snapshots list none: only step
        for i, keys in state["opt_keys"].items():
            # scalars come back 0-d; load_state_dict moves each tensor to its parameter's device
            opt_state["state"][int(i)] = {k: tensors[f"opt.{i}.{k}"].reshape(()) if k in scalars else tensors[f"opt.{i}.{k}"]
                                          for k in keys}
        o.opt.load_state_dict(opt_state)
        o.sched.load_state_dict({**state["sched"], "lr_lambdas": [None]})
        if o.ema is not None:
            for i, t in enumerate(o.ema.shadow):
                t.copy_(tensors[f"ema.{i}"])
            o.ema.steps = state["ema_steps"]
        if o.avg is not None:  # a run resumed with a longer or shorter average keeps what it can
            kept = state.get("averaged_epochs", 0)
            for j in range(max(0, kept - o.avg.n), kept):
                o.avg.kept.append([tensors[f"avg.{j}.{i}"].to(t.device) for i, t in enumerate(o.avg.tensors)])
        torch.set_rng_state(tensors["rng.torch"])
        version, internal, gauss = state["rng_python"]
        o.rng.setstate((version, tuple(internal), gauss))
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})



def fingerprint(sentences: Sequence[Sentence] | None) -> str | None:
    """A SHA-256 over the tokens and tags of ``sentences`` (None for no sentences)."""
    if sentences is None:
        return None
    h = hashlib.sha256()
    for tokens, tags in sentences:
        h.update(("\x1f".join(tokens) + "\x1e" + "\x1f".join(tags) + "\x1d").encode("utf-8"))
    return h.hexdigest()



def batch_for_world(out: Path, saved: dict[str, Any], config: Config, world: int) -> Config:
    """``config`` with the per-process batch size for ``world`` processes: a run resumed on another
    number of processes keeps its global batch (``batch_size x processes``), so its recipe goes on
    unchanged. NertoolError when that batch does not divide over ``world``."""
    was = int(saved.get("processes", 1))
    if was == world:
        return config
    total = config.train.batch_size * was
    if total % world:
        raise NertoolError(f"{out}: cannot resume on {world} processes: the run's global batch of {total} "
                           f"sentences ({was} processes x {config.train.batch_size}) does not divide over them")
    return replace(config, train=replace(config.train, batch_size=total // world))



# what a resumed run may change: how long it goes on and which weights it keeps, never the path
# its weights take (an uninterrupted run with the new values trains the same weights)
RESUME_MAY_CHANGE = ("epochs", "average_last")



def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A saved or new configuration with the defaults of keys added since, and without the fields a
    resume may change."""
    try:
        full = Config.from_dict(config).to_dict()
    except NertoolError:
        return config
    for name in RESUME_MAY_CHANGE:
        full["train"].pop(name, None)
    return full



def check_resumable(out: Path, saved: dict[str, Any], config: Config, corpus: dict[str, str | None]) -> None:
    """NertoolError unless the run in ``out`` can go on with ``config`` and ``corpus``. A run that
    ended after its epochs goes on when ``config`` asks for more of them."""
    if _comparable(saved.get("config") or {}) != _comparable(config.to_dict()):
        raise NertoolError(f"{out}: cannot resume with a different configuration than the run's")
    known = saved.get("corpus")
    if known is not None:
        for split in ("train", "dev"):
            if known.get(split) != corpus.get(split):
                what = "no" if corpus.get(split) is None else "a different"
                raise NertoolError(f"{out}: cannot resume with {what} {split} set: the run was trained on other "
                                   f"sentences (give the same files as when it started)")
    done = saved.get("epoch", 0)
    if saved.get("stopped_by") == "epochs" and config.train.epochs > done:
        return  # extended: more epochs than the run was given
    if saved.get("stopped_by"):
        more = " (give more --epochs to extend it)" if saved["stopped_by"] == "epochs" else ""
        raise NertoolError(f"{out}: the run already ended (stopped by {saved['stopped_by']} after epoch "
                           f"{done}); nothing to resume{more}")


def resumed_config(run: Path, changes: dict[str, Any]) -> Config:
    """The configuration saved with the run in ``run``, with ``changes`` to the [train] fields
    that a resume may change (:data:`RESUME_MAY_CHANGE`; None: unchanged)."""
    state = rundir.read_state(run)
    try:
        config = Config.from_dict(state["config"], str(run / rundir.STATE_JSON))
    except (KeyError, TypeError) as e:
        raise NertoolError(f"{run / rundir.STATE_JSON}: corrupt training state: {e}") from None
    bad = sorted(set(changes) - set(RESUME_MAY_CHANGE))
    if bad:
        raise NertoolError(f"a resumed run may change only {', '.join(RESUME_MAY_CHANGE)}, not {', '.join(bad)}")
    return config.override({"train": changes})
