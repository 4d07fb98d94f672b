"""Training on several processes: torch.distributed (DistributedDataParallel) as launched by
``torchrun``, which sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous in the environment.

:class:`Group` is what the training loop asks of the other processes: agreement before training
starts (every process read its corpus, the corpora are the same), the decisions rank 0 alone
takes (stop or go on), and sums over ranks. A one-process run gets :data:`SOLO`, whose methods do
nothing, so the loop has one code path.
"""
from __future__ import annotations

import datetime
import gc
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from nertool.errors import NertoolError

T = TypeVar("T")


class RankFailed(NertoolError):
    """Another process of the run failed (its own error is reported by that process)."""


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: one process, no torch.distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def _reduce(self, values: list[float], op: str = "SUM") -> list[float]:
        if not self.distributed:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        return t.tolist()

    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def agree(self, step: Callable[[], T]) -> T:
        """Run ``step`` on every rank; if it raises a NertoolError on any rank, raise on all (the
        failing rank its own error, the others :class:`RankFailed`), so none goes on alone."""
        error: NertoolError | None = None
        result = None
        try:
            result = step()
        except NertoolError as e:
            error = e
        if self.distributed:
            failed = self._reduce([1.0 if error else 0.0], "MAX")[0]
            if failed and error is None:
                raise RankFailed(f"rank {self.rank}: stopping, another process of the run failed before training (its error is above)")
        if error is not None:
            if self.distributed:
                raise NertoolError(f"rank {self.rank}: {error}") from None
            raise error
        return result  # type: ignore[return-value]

    def check_same(self, what: str, digest: str | None) -> None:
        """NertoolError on every rank unless all ranks hold the same ``digest`` (a hex string)."""
        if not self.distributed:
            return
        code = int(hashlib.sha256((digest or "").encode()).hexdigest()[:12], 16)  # 48 bits: exact in float64
        lo = self._reduce([float(code)], "MIN")[0]
        hi = self._reduce([float(code)], "MAX")[0]
        if lo != hi:
            raise NertoolError(f"rank {self.rank}: the processes of the run read different {what}; every node must "
                               "give the same files")

    def decide(self, value: int) -> int:
        """Rank 0's ``value`` on every rank (a stop decision, taken where the dev score is known)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.long, device=self._device())
        dist.broadcast(t, 0)
        return int(t.item())

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks."""
        return self._reduce(list(values))

    def finish(self) -> None:
        """Wait until every rank has finished (the main rank writes the model and its report after
        the last collective), so that no rank takes its process group down under another."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Take the process group down, and with it the communication threads (collected now,
        while the interpreter is whole: left to its shutdown, a rank could abort on exit)."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            gc.collect()


SOLO = Group()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def restarted() -> bool:
    """Whether torchrun restarted this run's processes after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def check_backend(device: str) -> str:
    """The backend for ``device`` (gloo on CPU, nccl on CUDA); NertoolError if torch lacks it."""
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_available() or not dist.is_backend_available(backend):
        raise NertoolError(f"distributed training needs the {backend} backend, which this torch build lacks"
                           + (" (nccl needs a CUDA build of torch)" if backend == "nccl" else ""))
    return backend


def init_group(device: str, timeout_minutes: float = 30.0) -> Group:
    """The process group torchrun set up in the environment (gloo on CPU, nccl on CUDA), or
    :data:`SOLO` when this process was not started by torchrun with more than one process."""
    if not launched_by_torchrun():
        return SOLO
    import torch.distributed as dist

    backend = check_backend(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    timeout = datetime.timedelta(minutes=timeout_minutes)
    try:
        if restarted():
            # after torchrun restarts the workers, the store can still hold the last attempt's
            # addresses: key this attempt's rendezvous apart
            rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
            base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                                 is_master=not agent_store and rank == 0, timeout=timeout)
            store = dist.PrefixStore(f"/nertool/attempt_{os.environ['TORCHELASTIC_RESTART_COUNT']}", base)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
        else:
            dist.init_process_group(backend, timeout=timeout)
    except (RuntimeError, ValueError) as e:
        raise NertoolError(f"cannot join the distributed run: {str(e).splitlines()[0]}") from None
    return Group(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def rank_device(group: Group, device: str) -> str:
    """The device this rank trains on: ``cuda`` means this rank's local GPU."""
    if group.backend == "nccl" and device in ("cuda", "gpu"):
        return f"cuda:{group.local_rank}"
    return device


def relaunch_under_torchrun(nproc: int, args: list[str]) -> int:
    """Run ``nertool ARGS`` (``--nproc`` dropped) under torchrun on ``nproc`` local processes; its exit code."""
    import subprocess

    argv, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "nertool", *argv]
    p = subprocess.Popen(cmd)

    def let_it_stop() -> None:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()

    try:
        return p.wait()
    except KeyboardInterrupt:  # the terminal signalled torchrun and its workers too
        let_it_stop()
        return 130
    except BaseException:  # SIGTERM, to this process only
        p.terminate()  # torchrun stops its workers on SIGTERM; a SIGKILL would leave them running
        let_it_stop()
        raise
