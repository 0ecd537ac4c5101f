"""Fine-tune GPT-2 as a text classifier (the book's chapter 6), on our GPT-2 or any transformers decoder.

Run as ``recipes/gpt2_classifier.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.gpt2_classifier``.
"""

from __future__ import annotations

import sys
from typing import Any

from ..cli import command_line
from .fine_tuning import fine_tune


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the recipe's flags, fine-tune, print one summary line; returns the metrics.json dict."""
    return fine_tune("gpt2_classifier", argv)


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
