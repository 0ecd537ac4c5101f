"""The study's two figures: test accuracy (with its interval) against training time, and the validation
curves of every row overlaid."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .results import RowResult

logger = logging.getLogger(__name__)
MARKERS = ("o", "s", "^", "D", "v", "P")  # with the 10 default colours: 60 rows told apart


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_time(results: list[RowResult], path: Path, title: str = "") -> None:
    """Mean test accuracy per row, its 95 % bootstrap interval as the error bar, against mean training
    minutes (log scale: a TF-IDF fit and a fine-tuning run differ by orders of magnitude). Rows are told
    apart by colour and marker in a legend beside the axes (labels on the points overlap where rows tie)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, result in enumerate(results):
        accuracy, minutes = (
            result.summary("test_accuracy")["mean"],
            result.summary("training_minutes")["mean"],
        )
        if accuracy is None or minutes is None:
            continue
        low, high = result.test_interval or (accuracy, accuracy)
        ax.errorbar(
            max(minutes, 1e-3), accuracy * 100, yerr=[[(accuracy - low) * 100], [(high - accuracy) * 100]],
            fmt=MARKERS[(i // len(colours)) % len(MARKERS)], color=colours[i % len(colours)], capsize=4,
            label=f"{result.name}: {accuracy * 100:.1f} %",
        )  # fmt: skip
    ax.set_xscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _finish(fig, ax, path, title, "training minutes (mean over seeds, log scale)",
            "test accuracy % (95 % bootstrap interval)")  # fmt: skip


def plot_validation_curves(results: list[RowResult], path: Path, title: str = "") -> None:
    """Validation accuracy against epochs, one colour per row, one line per seed (rows without a training
    history, such as frozen features or TF-IDF, are left out)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = 0
    for i, result in enumerate(results):
        colour = colours[i % len(colours)]
        for j, (_seed, history) in enumerate(sorted(result.histories.items())):
            points = [
                (h["epoch"], h["val_accuracy"] * 100) for h in history if h.get("val_accuracy") is not None
            ]
            if not points:
                continue
            epochs, accuracy = zip(*points, strict=True)
            ax.plot(
                epochs, accuracy, color=colour, alpha=0.8, marker=".", label=result.name if j == 0 else None
            )
            drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no run has a training history", ha="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8)
    _finish(fig, ax, path, title, "epochs", "validation accuracy %")


def _finish(fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> None:
    """Label and title the axes, grid them, write the figure to ``path`` and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
