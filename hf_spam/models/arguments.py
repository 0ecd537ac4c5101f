"""The model flags of the fine-tuning recipes: which model, which implementation, which parts learn.

Defaults follow the book's chapter 6: GPT-2 small, pretrained, last token, last block trainable, dropout 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .classifier import Pooling
from .trainable import Trainable

Implementation = Literal["hf_spam", "transformers"]  # our GPT-2, or transformers' Auto* classes
Weights = Literal["pretrained", "random"]


@dataclass
class ModelArguments:
    """Which model and which parts of it learn."""

    model: str = field(
        default="gpt2",
        metadata={"help": "gpt2 / gpt2-medium / gpt2-large / gpt2-xl, a hub id, or a local model folder"},
    )
    implementation: Implementation = field(
        default="hf_spam",
        metadata={"help": "hf_spam: our GPT-2; transformers: AutoModelForSequenceClassification"},
    )
    weights: Weights = field(
        default="pretrained", metadata={"help": "random: the same architecture, randomly initialised"}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer hub id or folder (default: the model's, else gpt2)"}
    )
    pooling: Pooling | None = field(
        default=None,
        metadata={
            "help": "token(s) feeding the head, hf_spam GPT-2 only (default last); transformers' own head"
        },
    )
    trainable: Trainable = field(
        default="last_block",
        metadata={"help": "which parameters are trained (the book: last_block); lora: adapters + head"},
    )
    causal: bool = field(default=True, metadata={"help": "--causal false lets tokens attend to later ones"})
    dropout: float | None = field(
        default=0.0, metadata={"help": "dropout for the whole model (the book: 0.0); None keeps the model's"}
    )
