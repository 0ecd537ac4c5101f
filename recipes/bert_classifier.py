"""Fine-tune a BERT-style encoder as a text classifier ([CLS] head): the "BERT vs GPT" baseline.

    accelerate launch recipes/bert_classifier.py --model /path/to/all-MiniLM-L6-v2 \
        --data_source ../shared/data/sms_spam/SMSSpamCollection

Any encoder through AutoModelForSequenceClassification (default bert-base-uncased, from the hub);
the same data pipeline, loop, flags, metrics.json, curves.png and saved model as gpt2_classifier.py.
--trainable all (default here) / last_block / last_two_blocks / head / lora (--lora_r, --lora_alpha,
--lora_dropout, --lora_targets, --merge).
"""

import sys

from hf_spam.commands.bert_classifier import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
