"""Merge a LoRA run's adapter into its base model; write the plain model (what `--merge` does in training).

Run as ``recipes/merge_lora.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.merge_lora``.
"""

from __future__ import annotations

import sys

from ..cli import ArgumentParser, command_line
from ..models.adapters import merge_adapter_run


def main(argv: list[str] | None = None) -> str:
    """Merge the run's adapter into its base; print and return the merged folder."""
    parser = ArgumentParser(description="Merge a LoRA run's adapter into its base model.")
    parser.add_argument("--run", required=True, help="a run folder trained with --trainable lora")
    parser.add_argument("--output", help="where to write the merged model (default: <run>/merged)")
    args = parser.parse_args(argv)
    output = merge_adapter_run(args.run, args.output)
    print(output)
    return str(output)


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
