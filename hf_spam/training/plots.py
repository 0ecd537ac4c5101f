"""``curves.png``: the book's training figures, loss and accuracy against optimizer steps (and epochs)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """``curves.png``: loss and accuracy against optimizer steps, train vs validation (the book's figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        logger.warning("no evaluation history; %s not written", path)
        return
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        train = [
            (s, h[f"train_{metric}"])
            for s, h in zip(steps, history, strict=True)
            if h[f"train_{metric}"] is not None
        ]
        if train:
            ax.plot(*zip(*train, strict=True), marker="o", label=f"training {label}")
        ax.plot(
            steps,
            [h[f"val_{metric}"] for h in history],
            marker="s",
            linestyle="-.",
            label=f"validation {label}",
        )
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        epochs = ax.secondary_xaxis("top", functions=_step_to_epoch(history))
        epochs.set_xlabel("epochs")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _step_to_epoch(history: list[dict[str, Any]]):
    import numpy as np

    steps = np.array([0.0] + [h["step"] for h in history])
    epochs = np.array([0.0] + [h["epoch"] for h in history])
    return (lambda x: np.interp(x, steps, epochs)), (lambda e: np.interp(e, epochs, steps))
