"""A PNG of training loss and dev F1 per epoch (needs matplotlib: the ``plot`` extra)."""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .fileio import atomic_write_bytes


def write_training_plot(path: str | Path, history: Sequence[dict[str, Any]]) -> bool:
    """Write the plot; returns False (and writes nothing) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(epochs, [r["loss"] for r in history], color="tab:blue", marker="o", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean NLL per sentence)", color="tab:blue")
    if any("dev_f1" in r for r in history):
        ax2 = ax.twinx()
        ax2.plot([r["epoch"] for r in history if "dev_f1" in r], [100 * r["dev_f1"] for r in history if "dev_f1" in r],
                 color="tab:red", marker="s", label="dev F1")
        ax2.set_ylabel("dev span F1 (%)", color="tab:red")
    ax.set_title("nertool training")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True
