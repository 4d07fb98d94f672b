"""A training run from files, on one process or as one rank of several (torchrun): load the
corpus (every rank agrees on it), report what it is, train, and close the process group."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nertool.config import Config
from nertool.data.conll import load_corpus
from nertool.store import rundir
from nertool.training.distributed import init_group, rank_device, restarted
from nertool.training.loop import TrainResult, train
from nertool.training.report import Reporter, SilentReporter


def run_training(corpus: str, dev: Path | None, test: Path | None, config: Config, out: Path, *,
                 resume: bool = False, device: str = "cpu", force: bool = False,
                 reporter: Callable[[bool], Reporter | None] = lambda main: None) -> TrainResult | None:
    """Train on the files (or hub corpus) given; the result on the main process, None on the
    others. ``reporter(is_main)`` makes the progress reporter of this process. A run that torchrun
    restarted after a failure goes on from the last epoch of ``out``."""
    auto_resume = not resume and restarted() and rundir.has_state(out)
    force = force or (not resume and restarted())
    group = init_group(device)
    try:
        c = group.agree(lambda: load_corpus(corpus, dev, test, config.data))  # bad input on any rank stops all, now
        report = reporter(group.is_main) or SilentReporter()
        sizes = {k: len(v) for k, v in c.splits.items()}
        if group.is_main:
            _describe(c, sizes, config, resume, group, report)
        info = {"train": corpus, "dev": str(dev) if dev else None, "test": str(test) if test else None,
                "sentences": sizes, "scheme": c.scheme}
        try:
            result = train(c, config, out, report, corpus_info=info, resume=resume or auto_resume,
                           device=rank_device(group, device), force=force, group=group)
            group.finish()
        finally:
            if group.is_main and hasattr(report, "stop"):
                report.stop()
    finally:
        group.close()
    return result if group.is_main else None


def _describe(c, sizes: dict[str, int], config: Config, resume: bool, group, report: Reporter) -> None:
    if not resume and "dev" not in c.splits and not config.train.dev_fraction:
        report.message("warning: no --dev set: nothing selects the best epoch or stops early; the last epoch's "
                       "model is kept (--dev-fraction 0.1 holds out a tenth of train as dev)")
    where = f", {group.world} processes ({group.backend})" if group.distributed else ""
    report.message(f"corpus: {sizes} sentences, scheme {c.scheme}, {len(c.labels)} labels{where}")
