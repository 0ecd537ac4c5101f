"""Classify texts with a saved run: label and probability per text.

    python recipes/predict.py --run outputs/<run> "Free entry in a weekly competition!" "see you at 6"
    python recipes/predict.py --run outputs/<run> --file texts.txt      # one text per line
    echo "WINNER!! claim your prize" | python recipes/predict.py --run outputs/<run>
    python recipes/predict.py --run your-name/gpt2-spam "see you at 6"     # a repo pushed to the hub

Prints one JSON object per text: {"text", "label", "probability", "probabilities", "threshold",
"temperature", "long_text", "tokens", "chunks", "truncated"}. The run's operating point (threshold and
temperature chosen on validation, operating_point.json) is applied; --threshold overrides it
(--threshold 0.5 --temperature 1 gives transformers.pipeline's argmax). A text longer than the model's
context: --long_text chunks (default: the mean of the windows' probabilities), head_tail or truncate.
An error (no such run folder, a bad flag) is one line on stderr; --debug (or HF_SPAM_DEBUG=1) shows the
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from hf_spam.cli import ArgumentParser, run_main
from hf_spam.predict import DEFAULT_LONG_TEXT, LONG_TEXT_MODES, Predictor


def read_texts(args: argparse.Namespace) -> list[str]:
    if args.texts:
        return args.texts
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    return [line for line in lines if line.strip()]


def main(argv: list[str] | None = None) -> None:
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
    for text, result in zip(texts, predictor(texts, batch_size=args.batch_size), strict=True):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(run_main(main))
