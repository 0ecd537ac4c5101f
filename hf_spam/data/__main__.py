"""``python -m hf_spam.data summary --dataset sms_spam --source PATH --protocol book [--dedup]``."""

from __future__ import annotations

import argparse
import logging
import sys

import datasets
from datasets import DatasetDict

from ..tokenizer import load_tokenizer
from .sources import load_dataset_by_name_with_report
from .splits import DEFAULT_FRACTIONS, split_with_report
from .summary import summarize


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (one sub-command, ``summary``)."""
    parser = argparse.ArgumentParser(prog="python -m hf_spam.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="rows per split and label, token lengths, duplicates")
    summary.add_argument(
        "--dataset", required=True, help="sms_spam, imdb, or the path of a csv/tsv/jsonl/parquet"
    )
    summary.add_argument(
        "--source", default=None, help="local file/folder of the dataset (default: download)"
    )
    summary.add_argument(
        "--protocol",
        choices=sorted(DEFAULT_FRACTIONS),
        default=None,
        help="split protocol (default: official for a train/test dataset such as imdb, else book)",
    )
    summary.add_argument("--dedup", action="store_true", help="keep duplicate texts in one split")
    summary.add_argument("--seed", type=int, default=123)
    summary.add_argument("--fractions", type=float, nargs="+", default=None, help="e.g. 0.7 0.1 0.2")
    summary.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id, for token lengths")
    summary.add_argument("--max_length", type=int, default=None, help="truncation length to count against")
    summary.add_argument("--on_bad_line", choices=["error", "skip"], default="error")
    summary.add_argument(
        "--clean", action="store_true", help="apply clean_text (<br />, HTML entities, spaces)"
    )
    summary.add_argument("--text_column", default="text", help="for a file dataset")
    summary.add_argument("--label_column", default="label", help="for a file dataset")
    summary.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    return parser


def run_summary(args: argparse.Namespace) -> str:
    """Load, split and (optionally) tokenise as the arguments say; return the summary text."""
    kwargs = {"on_bad_line": args.on_bad_line, "clean": args.clean}
    if args.dataset.lower() not in {"sms_spam", "sms", "imdb"}:
        kwargs.update(text_column=args.text_column, label_column=args.label_column)
    data, load_report = load_dataset_by_name_with_report(args.dataset, args.source, **kwargs)
    protocol = args.protocol or ("official" if isinstance(data, DatasetDict) else "book")
    splits, split_report = split_with_report(
        data, protocol, seed=args.seed, dedup=args.dedup, fractions=args.fractions
    )
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    return summarize(splits, split_report, load_report, tokenizer, args.max_length)


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the summary and returns the exit code."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        datasets.disable_progress_bars()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    print(run_summary(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
