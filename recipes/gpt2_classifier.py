"""Fine-tune GPT-2 as a text classifier (the book's chapter 6), on our GPT-2 or any transformers decoder.

    accelerate launch recipes/gpt2_classifier.py \
        --data_source ../shared/data/sms_spam/SMSSpamCollection \
        --tokenizer ../shared/models/gpt2-tokenizer --weights random --trainable all

Every switch of the book's bonus study is a flag: --trainable, --pooling, --causal, --model (size),
--weights, --padding, --trainable lora (peft adapters: --lora_r, --lora_alpha, --lora_targets, --merge);
--implementation transformers runs AutoModelForSequenceClassification instead
(e.g. --model SmolLM2-135M-Instruct folder). A YAML file as first argument gives the defaults.
Writes outputs/<run>/: metrics.json, args.json, history.json, curves.png and the saved model.
"""

from __future__ import annotations

import sys

from accelerate import PartialState

from hf_spam.args import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.cli import run_main
from hf_spam.lora import LoraArguments
from hf_spam.operating_point import OperatingPointArguments
from hf_spam.run import configure_logging, run_classification, summary_line

# what main parses; hf_spam.study reads the flags a row may take from it
ARGUMENT_GROUPS = (ModelArguments, DataArguments, TrainArguments, LoraArguments, OperatingPointArguments)


def main(argv: list[str] | None = None) -> dict:
    metrics = run_classification(*parse_args(ARGUMENT_GROUPS, argv))
    if PartialState().is_main_process:
        print(summary_line(metrics))
    return metrics


if __name__ == "__main__":
    configure_logging()
    sys.exit(run_main(main))
