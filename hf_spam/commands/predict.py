"""Classify texts with a saved run: label and probability per text.

Run as ``recipes/predict.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.predict``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..cli import ArgumentParser, command_line
from ..serving import DEFAULT_LONG_TEXT, LONG_TEXT_MODES, Predictor


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


def main(argv: list[str] | None = None) -> None:
    """Classify the texts with the run; print one JSON object per text."""
    parser = ArgumentParser(description="Classify texts with a saved hf_spam run.")
    parser.add_argument(
        "--run", required=True, help="a run folder (or any saved classifier folder), or a hub repo id"
    )
    parser.add_argument("--file", help="a UTF-8 file with one text per line")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument(
        "--long_text",
        choices=LONG_TEXT_MODES,
        default=DEFAULT_LONG_TEXT,
        help=f"texts longer than the model's context (default {DEFAULT_LONG_TEXT}: average the windows)",
    )
    parser.add_argument("--max_length", type=int, help="tokens per window (default: the model's context)")
    parser.add_argument("--threshold", type=float, help="probability of class 1 (default: the run's)")
    parser.add_argument("--temperature", type=float, help="softmax temperature (default: the run's)")
    parser.add_argument(
        "--pairs", action="store_true",
        help="for a run trained on sentence pairs (--text_pair_column): each text is two, tab-separated",
    )  # fmt: skip
    parser.add_argument("texts", nargs="*", help="texts to classify (default: --file, else stdin)")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise ValueError(f"--threshold {args.threshold}: a probability, in [0, 1]")
    if args.temperature is not None and args.temperature <= 0:
        raise ValueError(f"--temperature {args.temperature}: must be > 0")
    predictor = Predictor(
        args.run,
        max_length=args.max_length,
        long_text=args.long_text,
        threshold=args.threshold,
        temperature=args.temperature,
    )
    texts = read_texts(args)
    if args.pairs:
        texts, text_pairs = split_pairs(texts)
        results = predictor(texts, batch_size=args.batch_size, text_pairs=text_pairs)
        for text, text_pair, result in zip(texts, text_pairs, results, strict=True):
            print(json.dumps({"text": text, "text_pair": text_pair, **result}, ensure_ascii=False))
        return
    for text, result in zip(texts, predictor(texts, batch_size=args.batch_size), strict=True):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))


def cli() -> int:
    """The shell command: user errors as one line."""
    return command_line(main, log=False)


if __name__ == "__main__":
    sys.exit(cli())
