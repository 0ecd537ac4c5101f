"""Classify texts with a saved run: label and probability per text.

    python recipes/predict.py --run outputs/<run> "Free entry in a weekly competition!" "see you at 6"
    python recipes/predict.py --run outputs/<run> --file texts.txt      # one text per line
    echo "WINNER!! claim your prize" | python recipes/predict.py --run outputs/<run>
    python recipes/predict.py --run your-name/gpt2-spam "see you at 6"     # a repo pushed to the hub

Prints one JSON object per text: {"text", "label", "probability", "probabilities"}. An error (no such
run folder, a bad flag) is one line on stderr; --debug (or HF_SPAM_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from hf_spam.cli import ArgumentParser, run_main
from hf_spam.predict import Predictor


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
    parser.add_argument("texts", nargs="*", help="texts to classify (default: --file, else stdin)")
    args = parser.parse_args(argv)
    predictor = Predictor(args.run)
    texts = read_texts(args)
    for text, result in zip(texts, predictor(texts, batch_size=args.batch_size), strict=True):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(run_main(main))
