"""Classify texts with a saved run: label and probability per text.

Run as ``recipes/predict.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.predict``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..cli import DataclassArgumentParser, command_line
from ..hub.access import is_local
from ..serving import Predictor, ServingArguments
from ..serving.accuracy import measure_serving_accuracy

PROGRESS_MIN_TEXTS = 256  # a file at least this long shows a progress bar (on stderr)


def read_texts(args: argparse.Namespace) -> list[str]:
    """The texts to classify: the arguments, else the file's lines, else stdin's (blank lines skipped)."""
    if args.texts:
        return args.texts
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    return [line for line in lines if line.strip()]


def split_pairs(texts: list[str]) -> tuple[list[str], list[str]]:
    """``--pairs``: each text is a sentence pair, its two texts separated by the first tab."""
    firsts, seconds = [], []
    for number, text in enumerate(texts, 1):
        first, tab, second = text.partition("\t")
        if not tab:
            raise ValueError(f"--pairs: text {number} ({text[:40]!r}) has no tab between its two texts")
        firsts.append(first)
        seconds.append(second)
    return firsts, seconds


def parse(argv: list[str] | None) -> tuple[ServingArguments, argparse.Namespace]:
    """The serving flags (:class:`~hf_spam.serving.ServingArguments`) and this command's own."""
    description = "Classify texts with a saved hf_spam run."
    parser = DataclassArgumentParser((ServingArguments,), description=description, allow_abbrev=False)
    parser.add_argument(
        "--run", required=True, help="a run folder (or any saved classifier folder), or a hub repo id"
    )
    parser.add_argument("--file", help="a UTF-8 file with one text per line")
    parser.add_argument("--batch_size", type=int, help="at most this many windows per batch (default: "
                        "as many as --max_batch_tokens allows)")  # fmt: skip
    parser.add_argument(
        "--measure_accuracy", action="store_true",
        help="classify the run's own test split (rebuilt from args.json) with float32 torch and with this "
        "variant (--quantize, --backend, --dtype); write the accuracy change to <run>/serving_accuracy.json",
    )  # fmt: skip
    parser.add_argument("--max_test_samples", type=int, help="--measure_accuracy on a random subset")
    parser.add_argument(
        "--pairs", action="store_true",
        help="for a run trained on sentence pairs (--text_pair_column): each text is two, tab-separated",
    )  # fmt: skip
    parser.add_argument("texts", nargs="*", help="texts to classify (default: --file, else stdin)")
    serving, args, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        raise ValueError(
            f"unrecognized arguments: {' '.join(unknown)} (texts go before the flags; see --help)"
        )
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch_size {args.batch_size}: must be >= 1")
    if args.measure_accuracy and not is_local(args.run):
        raise ValueError(
            f"--measure_accuracy writes into the run folder: --run {args.run} is not a local folder"
        )
    if args.max_test_samples is not None and not args.measure_accuracy:
        raise ValueError("--max_test_samples needs --measure_accuracy")
    return serving, args


def main(argv: list[str] | None = None) -> None:
    """Classify the texts with the run; print one JSON object per text (with ``--measure_accuracy``, first
    the accuracy record)."""
    serving, args = parse(argv)
    if args.measure_accuracy:
        entry = measure_serving_accuracy(args.run, serving, args.max_test_samples)
        print(json.dumps({"serving_accuracy": serving.variant(), **entry}))
        if not (args.texts or args.file):
            return
    predictor = Predictor.from_arguments(args.run, serving)
    texts = read_texts(args)
    progress = len(texts) >= PROGRESS_MIN_TEXTS
    if args.pairs:
        texts, text_pairs = split_pairs(texts)
        results = predictor(texts, batch_size=args.batch_size, progress=progress, text_pairs=text_pairs)
        for text, text_pair, result in zip(texts, text_pairs, results, strict=True):
            print(json.dumps({"text": text, "text_pair": text_pair, **result}, ensure_ascii=False))
        return
    results = predictor(texts, batch_size=args.batch_size, progress=progress)
    for text, result in zip(texts, results, strict=True):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))


def cli() -> int:
    """The shell command: user errors as one line."""
    return command_line(main, log=False)


if __name__ == "__main__":
    sys.exit(cli())
