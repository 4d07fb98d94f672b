"""Where code runs: torch devices, the cores this process may use, the machine record a model keeps."""
from __future__ import annotations

import gc
import os
import platform
import sys
from typing import TYPE_CHECKING, Any

from nertool.errors import NertoolError

if TYPE_CHECKING:  # torch is imported on use: a reading process need not load it
    import torch


def machine_record(where: torch.device) -> dict[str, Any]:
    """What a run was trained on (its last start, when resumed): the same seed gives the same
    weights only on the same kind of machine, since torch picks its CPU kernels by instruction set."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    record: dict[str, Any] = {"torch": torch.__version__, "cpu": cpu,
                              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                              "threads": torch.get_num_threads(), "device": where.type}
    if where.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(where)
    return record


def torch_device(name: str) -> torch.device:
    """The torch device named ``name`` (cpu, cuda, cuda:N); an error when CUDA is asked for but absent."""
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise NertoolError(f"unknown device {name!r}; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NertoolError(f"device {name!r} requested but CUDA is not available on this machine")
    return dev


def freeze_heap() -> None:
    """Moves every object alive now (torch, the model, the vocabularies: some 170,000 objects)
    into the garbage collector's permanent generation. Its full collections, which a long tagging
    run triggers every few seconds, then walk only what tagging made since, not those: each cost
    about 0.1 s and together 12% of `nertool tag`'s time (BENCHMARKS.md section 20). For a
    process that loads once and then tags: the CLI, the service, the tagging workers. Objects
    frozen here are never collected, so call it after loading, not in a loop."""
    gc.collect()
    gc.freeze()


def bound_kernel_caches(environ=os.environ) -> None:
    """Caps oneDNN's cache of prepared kernels (torch's CPU LSTM makes one for each batch shape;
    1,024 are kept by default) at :data:`KERNEL_CACHE` unless the user set it: a service sees
    endless shapes, and that cache was its whole RSS growth (BENCHMARKS.md 20.8, 20.11). Call before
    torch runs a network in this process, or in the environment its worker processes inherit."""
    environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(KERNEL_CACHE))


KERNEL_CACHE = 256  # 16 thrashed on a lone sentence's lengths (BENCHMARKS.md 20.11); 1,024 kept growing


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def die_with_parent(parent: int) -> bool:
    """On Linux: have the kernel SIGKILL this process once its parent (the process ``parent``: a
    torchrun launcher, a tagging run's main process) exits, so that no worker outlives its run,
    even one busy in a long call that holds the GIL or blocked in a collective. False when the
    parent has already gone; True otherwise (also where prctl does not exist)."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return True
    return os.getppid() == parent  # the parent may have exited before prctl took hold
