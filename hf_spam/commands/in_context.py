"""In-context learning: a frozen decoder classifies by the label word it finds most likely after a prompt of
labelled examples; nothing is trained.

Run as ``recipes/in_context.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.in_context``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..arguments import RECIPES, parse_args
from ..cli import command_line
from ..in_context import run_in_context


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the flags, prompt, score; print one summary line; returns the metrics.json dict."""
    args, data_args = parse_args(RECIPES["in_context"].groups, argv)
    metrics = run_in_context(args, data_args)
    details = metrics["training"]["details"]
    summary = {
        "run": metrics["run"],
        "accuracy": {split: round(m["accuracy"], 4) for split, m in metrics["splits"].items()},
        "k": details["k"],
        "demos": details["demos"],
        "calibrated": details["calibration"]["applied"],
        "prompts_trimmed": details["prompts_trimmed"],
        "seconds": round(metrics["seconds"]["training"] + metrics["seconds"]["evaluation"], 1),
    }
    print(json.dumps(summary))
    return metrics


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
