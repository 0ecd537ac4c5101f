"""Learning curves: every row of a study at several numbers of labelled training examples.

``compare.py STUDY.yaml --train_sizes 8 16 32 64 256 all`` (or ``train_sizes:`` in the study file) runs each
row once per size: row ``lora`` becomes rows ``lora@8``, ..., ``lora@all``, each passing ``--train_size N``
(:func:`hf_spam.data.pipeline.balanced_subset`: balanced, nested, drawn with the run's seed; validation and
test unchanged) into ``outputs/<study>/lora@8/seed<k>/``; each question is asked at every size. The report
adds a table of test accuracy (mean ± std over seeds, 95 % bootstrap interval) and time per run, rows
against sizes, and ``learning_curves.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import StudyError
from .plots import LINESTYLES, MARKERS, _finish, _pyplot
from .results import RowResult
from .spec import Question, Row, Study

logger = logging.getLogger(__name__)

CURVES_PLOT = "learning_curves.png"


def size_label(size: int | None) -> str:
    """``8`` -> ``"8"``; ``None`` (the whole training split) -> ``"all"``."""
    return "all" if size is None else str(size)


def row_name(base: str, size: int | None) -> str:
    """The name of row ``base`` at ``size`` training examples: ``lora@8``, ``lora@all``."""
    return f"{base}@{size_label(size)}"


def expand_train_sizes(study: Study) -> None:
    """Replace each row by one row per size of ``study.train_sizes`` (``--train_size`` set, except for
    ``all``), and each question by one per size, in place; nothing when the study has no sizes. Call it
    after overrides and row selection (they name the study's own rows). A row whose recipe takes no
    ``--train_size``, or that sets it itself, is a :class:`StudyError`."""
    sizes = study.train_sizes
    if not sizes:
        return
    rows: list[Row] = []
    for row in study.rows:
        if "train_size" not in row.recipe.flags:
            raise StudyError(f"row {row.name}: the {row.recipe.name} recipe takes no --train_size")
        if "train_size" in row.args:
            raise StudyError(
                f"row {row.name} sets train_size itself ({row.args['train_size']}): the study's train_sizes "
                "vary it; remove one of them"
            )
        for size in sizes:
            args = row.args | ({} if size is None else {"train_size": size})
            pinned = row.pinned | {"train_size"}
            rows.append(Row(row_name(row.name, size), row.recipe, args, row.note, pinned, row.name, size))
    study.questions = [
        Question(
            f"{question.title} ({size_label(size)} labelled examples)",
            [row_name(r, size) for r in question.rows],
        )
        for question in study.questions
        for size in sizes
    ]
    study.rows = rows
    study.notes.append(f"learning curves: every row at {[size_label(s) for s in sizes]} training examples")
    logger.info("learning curves: %d rows x %d sizes", len(rows) // len(sizes), len(sizes))


def learning_curves(study: Study, results: list[RowResult]) -> dict[str, list[dict[str, Any]]]:
    """Per study row (in order), one point per size: ``size``, ``examples`` (the training rows the runs
    used, mean over seeds), test accuracy ``mean``/``std``/``interval``, ``seconds`` (mean time per run,
    every phase), ``seeds``."""
    by_name = {result.name: result for result in results}
    curves: dict[str, list[dict[str, Any]]] = {}
    for row in study.rows:
        result = by_name.get(row.name)
        if row.base is None or result is None:
            continue
        accuracy = result.summary("test_accuracy")
        examples = [n for n in result.train_examples if n is not None]
        curves.setdefault(row.base, []).append(
            {
                "size": size_label(row.train_size),
                "examples": sum(examples) / len(examples) if examples else None,
                "mean": accuracy["mean"],
                "std": accuracy["std"],
                "interval": list(result.test_interval) if result.test_interval else None,
                "seconds": sum(result.run_seconds) / len(result.run_seconds) if result.run_seconds else None,
                "seeds": len(result.seeds),
            }
        )
    return curves


def _accuracy_cell(point: dict[str, Any], seeds: int) -> str:
    """``mean ± std [interval]``, and the number of seeds when fewer than the study's ``seeds`` ran."""
    if point["mean"] is None:
        return "-"
    text = f"{point['mean'] * 100:.1f}"
    if point["std"] is not None:
        text += f" ± {point['std'] * 100:.1f}"
    if point["interval"]:
        low, high = point["interval"]
        text += f" [{low * 100:.1f}, {high * 100:.1f}]"
    if point["seeds"] < seeds:
        text += f" ({point['seeds']} seed{'s' if point['seeds'] > 1 else ''})"
    return text


def curve_lines(study: Study, curves: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The report's learning-curve section: test accuracy and seconds per run, rows against sizes."""
    if not curves:
        return []
    labels = [size_label(size) for size in study.train_sizes]
    header = "| row | " + " | ".join(labels) + " |"
    rule = "|" + " --- |" * (len(labels) + 1)

    def table(cell: Any) -> list[str]:
        lines = [header, rule]
        for base, points in curves.items():
            by_size = {point["size"]: point for point in points}
            cells = [cell(by_size[label]) if label in by_size else "-" for label in labels]
            lines.append(f"| {base} | " + " | ".join(cells) + " |")
        return lines

    examples = {p["size"]: p["examples"] for points in curves.values() for p in points if p["examples"]}
    used = ", ".join(f"{label}: {examples[label]:,.0f}" for label in labels if label in examples)
    return [
        "## Learning curves",
        "",
        f"Labelled training examples per run ({used}): a balanced subset drawn with each run's seed, nested "
        "(a size's rows are among the next size's); validation and test are the same at every size (the "
        "validation split still picks k, C, the threshold and the best epoch).",
        "",
        "Test accuracy %, mean ± std over seeds [95 % bootstrap interval, test examples resampled] (the "
        "number of seeds where fewer than the study's ran):",
        "",
        *table(lambda point: _accuracy_cell(point, len(study.seeds))),
        "",
        "Time per run, seconds (mean over seeds; every phase its metrics.json reports: features or training, "
        "evaluation, cache building, saving; not the process start):",
        "",
        *table(lambda p: "-" if p["seconds"] is None else f"{p['seconds']:,.1f}"),
        "",
        f"![test accuracy against labelled examples]({CURVES_PLOT})",
    ]


def plot_learning_curves(curves: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> None:
    """Test accuracy against labelled training examples (log scale), one line per row, the 95 % bootstrap
    interval of each point as its error bar (rows nudged sideways a little, so that bars do not hide each
    other; the ticks are the sizes)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ticks: set[float] = set()
    for i, (base, points) in enumerate(curves.items()):
        drawn = [p for p in points if p["mean"] is not None and p["examples"]]
        if not drawn:
            continue
        ticks |= {p["examples"] for p in drawn}
        nudge = 2 ** (0.025 * (i - (len(curves) - 1) / 2))
        xs = [p["examples"] * nudge for p in drawn]
        ys = [p["mean"] * 100 for p in drawn]
        lows = [(p["mean"] - (p["interval"] or [p["mean"]] * 2)[0]) * 100 for p in drawn]
        highs = [((p["interval"] or [p["mean"]] * 2)[1] - p["mean"]) * 100 for p in drawn]
        ax.errorbar(
            xs, ys, yerr=[lows, highs], capsize=3, color=colours[i % len(colours)],
            marker=MARKERS[(i // len(colours)) % len(MARKERS)],
            linestyle=LINESTYLES[(i // len(colours)) % len(LINESTYLES)], label=base,
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ticks), [f"{t:,.0f}" for t in sorted(ticks)])
    ax.minorticks_off()
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _finish(fig, ax, path, title, "labelled training examples (log scale)",
            "test accuracy % (mean over seeds; 95 % bootstrap interval)")  # fmt: skip
