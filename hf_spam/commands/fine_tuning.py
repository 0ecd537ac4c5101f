"""What both fine-tuning recipes run; they differ only in their model defaults
(:data:`hf_spam.arguments.RECIPES`)."""

from __future__ import annotations

from typing import Any

from accelerate import PartialState

from ..arguments import RECIPES, parse_args
from ..training.fine_tune import run_classification, summary_line


def fine_tune(recipe: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``recipe``'s flags from ``argv``, run :func:`run_classification`, print one summary line on
    the main process; returns the metrics.json dict."""
    metrics = run_classification(*parse_args(RECIPES[recipe].groups, argv))
    if PartialState().is_main_process:
        print(summary_line(metrics))
    return metrics
