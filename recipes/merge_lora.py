"""Merge a LoRA run's adapter into its base model; write the plain model (what `--merge` does in training).

    python recipes/merge_lora.py --run outputs/<run>                  # writes outputs/<run>/merged
    python recipes/merge_lora.py --run outputs/<run> --output merged-model

The base is rebuilt offline from the run folder's lora_base.json (checked against its fingerprint). The
merged folder loads like a full fine-tune: transformers.pipeline("text-classification", model=folder),
or recipes/predict.py --run folder. Our GPT-2 is written as transformers' GPT2ForSequenceClassification.
"""

import sys

from hf_spam.commands.merge_lora import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
