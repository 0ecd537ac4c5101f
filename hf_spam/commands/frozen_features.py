"""Frozen features + logistic regression, and the TF-IDF / bag-of-words floor with no neural network.

Run as ``recipes/frozen_features.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.frozen_features``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..arguments import RECIPES, parse_args
from ..cli import command_line
from ..frozen_features import run_frozen_features


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the flags, extract or vectorise, fit; print one summary line; returns the metrics.json dict."""
    feature_args, data_args = parse_args(RECIPES["frozen_features"].groups, argv)
    metrics = run_frozen_features(feature_args, data_args)
    details = metrics["training"]["details"]
    summary = {
        "run": metrics["run"],
        "accuracy": {split: round(m["accuracy"], 4) for split, m in metrics["splits"].items()},
        "best_C": details.get("best_C"),
        "k": details.get("best_k"),
        "analyzer": details.get("analyzer"),
        "feature_dim": details["feature_dim"],
        "cache_hit": details.get("cache_hit"),
        "seconds": round(metrics["seconds"]["training"], 1),
    }
    print(json.dumps(summary))
    return metrics


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
