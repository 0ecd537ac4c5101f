"""``python -m hf_spam.data summary --dataset sms_spam --data_source PATH --protocol book [--dedup]``.

``summary`` takes the recipes' data flags (:class:`hf_spam.data.DataArguments`: ``--dataset``,
``--data_source``, ``--protocol``, ``--dedup``, ``--clean_text``, ``--on_bad_line``,
``--label_names``, ``--label_map``, ...) and loads, splits and checks the data exactly as a run does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field, fields
from typing import Any

import datasets

from ..cli import ArgumentParser, DataclassArgumentParser, run_main
from .arguments import DataArguments
from .pipeline import load_splits
from .summary import summarize
from .tokenizer import load_tokenizer

logger = logging.getLogger("hf_spam.data")


@dataclass
class SummaryArguments:
    """What ``summary`` adds to the recipes' data flags."""

    seed: int = field(default=123, metadata={"help": "seeds the split, as --seed does in a recipe"})
    fractions: list[float] | None = field(
        default=None, metadata={"help": "split fractions, e.g. 0.7 0.1 0.2 (default: the protocol's)"}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer folder or hub id, for token lengths"}
    )
    verbose: bool = field(default=False, metadata={"help": "log at INFO", "aliases": ["-v"]})
    source: str | None = field(default=None, metadata={"help": "deprecated: use --data_source"})
    clean: bool = field(default=False, metadata={"help": "deprecated: use --clean_text"})


def build_parser() -> ArgumentParser:
    """The command-line interface (one sub-command, ``summary``)."""
    parser = ArgumentParser(prog="python -m hf_spam.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=DataclassArgumentParser)
    commands.add_parser(
        "summary",
        help="rows per file, split and label, token lengths, duplicates, skipped rows",
        dataclass_types=(DataArguments, SummaryArguments),
        allow_abbrev=False,
    )
    return parser


def _group(kind: type, namespace: argparse.Namespace) -> Any:
    return kind(**{f.name: getattr(namespace, f.name) for f in fields(kind) if f.init})


def parse(argv: list[str] | None = None) -> tuple[DataArguments, SummaryArguments]:
    """Parse ``summary``'s flags into the recipes' :class:`DataArguments` and :class:`SummaryArguments`;
    the deprecated ``--source`` / ``--clean`` are mapped (with a warning) to ``--data_source`` /
    ``--clean_text``."""
    namespace = build_parser().parse_args(argv)
    extra = _group(SummaryArguments, namespace)
    if extra.source is not None:
        if namespace.data_source is not None:
            raise ValueError("give --data_source only (--source is its deprecated name)")
        logger.warning("--source is deprecated: use --data_source (the recipes' name)")
        namespace.data_source = extra.source
    if extra.clean:
        logger.warning("--clean is deprecated: use --clean_text (the recipes' name)")
        namespace.clean_text = True
    return _group(DataArguments, namespace), extra


def run_summary(data_args: DataArguments, extra: SummaryArguments) -> str:
    """Load, split and check as a run does, (optionally) tokenise; return the summary text."""
    fractions = tuple(extra.fractions) if extra.fractions else None
    splits, report = load_splits(data_args, extra.seed, fractions)
    tokenizer = load_tokenizer(extra.tokenizer) if extra.tokenizer else None
    return summarize(splits, report, report.load_report, tokenizer, data_args.max_length)


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the summary and returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    if not verbose:
        datasets.disable_progress_bars()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    print(run_summary(*parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
