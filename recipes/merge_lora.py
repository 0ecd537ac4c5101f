"""Merge a LoRA run's adapter into its base model; write the plain model (what `--merge` does in training).

    python recipes/merge_lora.py --run outputs/<run>                  # writes outputs/<run>/merged
    python recipes/merge_lora.py --run outputs/<run> --output merged-model

The base is rebuilt offline from the run folder's lora_base.json (checked against its fingerprint). The
merged folder loads like a full fine-tune: transformers.pipeline("text-classification", model=folder),
or recipes/predict.py --run folder. Our GPT-2 is written as transformers' GPT2ForSequenceClassification.
"""

from __future__ import annotations

import argparse
import logging

from hf_spam.lora import merge_lora_run


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="Merge a LoRA run's adapter into its base model.")
    parser.add_argument("--run", required=True, help="a run folder trained with --trainable lora")
    parser.add_argument("--output", help="where to write the merged model (default: <run>/merged)")
    args = parser.parse_args(argv)
    output = merge_lora_run(args.run, args.output)
    print(output)
    return str(output)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
