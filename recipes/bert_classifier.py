"""Fine-tune a BERT-style encoder as a text classifier ([CLS] head): the "BERT vs GPT" baseline.

    accelerate launch recipes/bert_classifier.py --model /path/to/all-MiniLM-L6-v2 \
        --data_source ../shared/data/sms_spam/SMSSpamCollection

Any encoder through AutoModelForSequenceClassification (default bert-base-uncased, from the hub);
the same data pipeline, loop, flags, metrics.json, curves.png and saved model as gpt2_classifier.py.
--trainable all (default here) / last_block / last_two_blocks / head / lora (--lora_r, --lora_alpha,
--lora_dropout, --lora_targets, --merge).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

from accelerate import PartialState

from hf_spam.args import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.cli import run_main
from hf_spam.lora import LoraArguments
from hf_spam.operating_point import OperatingPointArguments
from hf_spam.run import configure_logging, run_classification, summary_line


@dataclass
class EncoderModelArguments(ModelArguments):
    """ModelArguments with encoder defaults: bert-base-uncased through transformers, all layers trained."""

    model: str = field(default="bert-base-uncased", metadata={"help": "an encoder hub id or local folder"})
    implementation: Literal["hf_spam", "transformers"] = field(
        default="transformers", metadata={"help": "encoders run through transformers"}
    )
    trainable: Literal["all", "last_block", "last_two_blocks", "head", "lora"] = field(
        default="all", metadata={"help": "which parameters are trained (lora: adapters + head)"}
    )

    def __post_init__(self) -> None:
        if self.implementation != "transformers":
            raise ValueError(
                "bert_classifier.py runs encoders through transformers; GPT-2: gpt2_classifier.py"
            )


# what main parses; hf_spam.study reads the flags a row may take from it
ARGUMENT_GROUPS = (
    EncoderModelArguments,
    DataArguments,
    TrainArguments,
    LoraArguments,
    OperatingPointArguments,
)


def main(argv: list[str] | None = None) -> dict:
    metrics = run_classification(*parse_args(ARGUMENT_GROUPS, argv))
    if PartialState().is_main_process:
        print(summary_line(metrics))
    return metrics


if __name__ == "__main__":
    configure_logging()
    sys.exit(run_main(main))
