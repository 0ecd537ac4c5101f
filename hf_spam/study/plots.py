"""The study's two figures: test accuracy (with its interval) against training time, and the validation
curves of every row overlaid."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .results import RowResult

logger = logging.getLogger(__name__)
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")  # with the 10 default colours: 60 rows told apart


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_time(results: list[RowResult], path: Path, title: str = "") -> None:
    """Mean test accuracy per row, its 95 % bootstrap interval as the error bar, against mean training
    minutes (log scale: a TF-IDF fit and a fine-tuning run differ by orders of magnitude)."""
    _accuracy_against(
        results, path, title, "training_minutes", "training minutes (mean over seeds, log scale)"
    )


def plot_accuracy_vs_parameters(results: list[RowResult], path: Path, title: str = "") -> None:
    """Mean test accuracy per row, with its interval, against the trainable parameters (log scale): what a
    method buys per parameter trained (full fine-tune, a few blocks, LoRA, (IA)^3, prompts)."""
    _accuracy_against(results, path, title, "trainable_parameters", "trainable parameters (log scale)")


def _accuracy_against(results: list[RowResult], path: Path, title: str, key: str, label: str) -> None:
    """Rows are told apart by colour and marker in a legend beside the axes (labels on the points overlap
    where rows tie); a row without ``key`` is left out."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, result in enumerate(results):
        accuracy, x = result.summary("test_accuracy")["mean"], result.summary(key)["mean"]
        if accuracy is None or x is None:
            continue
        low, high = result.test_interval or (accuracy, accuracy)
        ax.errorbar(
            max(x, 1e-3), accuracy * 100, yerr=[[(accuracy - low) * 100], [(high - accuracy) * 100]],
            fmt=MARKERS[(i // len(colours)) % len(MARKERS)], color=colours[i % len(colours)], capsize=4,
            label=f"{result.name}: {accuracy * 100:.1f} %",
        )  # fmt: skip
    ax.set_xscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _finish(fig, ax, path, title, label, "test accuracy % (95 % bootstrap interval)")


def plot_validation_curves(results: list[RowResult], path: Path, title: str = "") -> None:
    """Validation accuracy against epochs: per row the mean over seeds, with the seeds' range shaded (seeds
    evaluated at other points are drawn one line each); rows without a training history, such as frozen
    features or TF-IDF, are left out. Rows are told apart by colour and line style, legend beside the axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = 0
    for i, result in enumerate(results):
        style = {
            "color": colours[i % len(colours)],
            "linestyle": LINESTYLES[(i // len(colours)) % len(LINESTYLES)],
        }
        curves = [
            [(h["epoch"], h["val_accuracy"] * 100) for h in history if h.get("val_accuracy") is not None]
            for _seed, history in sorted(result.histories.items())
        ]
        curves = [curve for curve in curves if curve]
        if not curves:
            continue
        drawn += 1
        epochs = [e for e, _ in curves[0]]
        if all([e for e, _ in curve] == epochs for curve in curves):
            values = np.array([[a for _, a in curve] for curve in curves])
            label = f"{result.name} (mean of {len(curves)})" if len(curves) > 1 else result.name
            ax.plot(epochs, values.mean(axis=0), marker=".", label=label, **style)
            if len(curves) > 1:
                ax.fill_between(
                    epochs, values.min(axis=0), values.max(axis=0), alpha=0.12, color=style["color"]
                )
            continue
        for j, curve in enumerate(curves):  # seeds evaluated at different points: one line each
            ax.plot(
                *zip(*curve, strict=True),
                marker=".",
                alpha=0.8,
                label=result.name if j == 0 else None,
                **style,
            )
    if not drawn:
        ax.text(0.5, 0.5, "no run has a training history", ha="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _finish(
        fig, ax, path, title, "epochs", "validation accuracy % (line: mean over seeds; band: their range)"
    )


def _finish(fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> None:
    """Label and title the axes, grid them, write the figure to ``path`` and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
