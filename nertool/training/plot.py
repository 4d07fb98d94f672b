"""PNG figures (need matplotlib: the ``plot`` extra): training loss and dev F1 per epoch, and the
helpers the error report and the tuner draw theirs with."""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nertool.fileio import atomic_write_bytes


def pyplot():
    """matplotlib's pyplot on the file-only backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_png(fig, path: str | Path) -> None:
    """Write ``fig`` as a PNG, atomically, and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_training_plot(path: str | Path, history: Sequence[dict[str, Any]], run: str = "") -> bool:
    """Write the plot (loss and dev F1 per epoch, the best epoch marked, a legend, a title naming
    ``run``); returns False (and writes nothing) when matplotlib is not installed."""
    plt = pyplot()
    if plt is None:
        return False
    from matplotlib.ticker import MaxNLocator
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    lines = ax.plot(epochs, [r["loss"] for r in history], color="tab:blue", marker="o", label="training loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (mean NLL per sentence)", color="tab:blue")
    dev = [r for r in history if "dev_f1" in r]
    if dev:
        ax2 = ax.twinx()
        lines += ax2.plot([r["epoch"] for r in dev], [100 * r["dev_f1"] for r in dev], color="tab:red", marker="s",
                          label="dev F1")
        best = max(dev, key=lambda r: r["dev_f1"])
        lines.append(ax2.axvline(best["epoch"], color="gray", linestyle="--",
                                 label=f"best epoch {best['epoch']} (dev F1 {100 * best['dev_f1']:.2f})"))
        ax2.set_ylabel("dev span F1 (%)", color="tab:red")
    ax.legend(lines, [l.get_label() for l in lines], loc="center right", fontsize="small")
    ax.set_title(f"nertool training: {run}" if run else "nertool training")
    fig.tight_layout()
    save_png(fig, path)
    return True
