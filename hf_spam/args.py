"""Argument dataclasses shared by every recipe, parsed with ``HfArgumentParser`` (CLI and/or YAML).

Defaults follow the book's chapter 6 (lr 5e-5, weight decay 0.1, 5 epochs, batch 8, last token, last block
trainable, dropout 0), except padding: ``dynamic`` padding gives the same predictions (pooling reads the
attention mask) for much less compute; ``--padding longest_in_dataset`` is the book's.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser

logger = logging.getLogger(__name__)


@dataclass
class DataArguments:
    """Which data, how it is split, tokenised and batched."""

    dataset: str = field(
        default="sms_spam", metadata={"help": "sms_spam, imdb, or a csv/tsv/jsonl/parquet file"}
    )
    data_source: str | None = field(
        default=None,
        metadata={"help": "local file/folder of the dataset (default: download from UCI / the hub)"},
    )
    protocol: Literal["book", "stratified", "official"] | None = field(
        default=None, metadata={"help": "split protocol (default: book for sms_spam, official for imdb)"}
    )
    dedup: bool = field(default=False, metadata={"help": "keep duplicate texts in one split (no leakage)"})
    text_column: str = field(default="text", metadata={"help": "text column of a generic file"})
    label_column: str = field(default="label", metadata={"help": "label column of a generic file"})
    clean_text: bool = field(
        default=False, metadata={"help": "unescape HTML entities, turn <br /> into spaces"}
    )
    max_length: int | None = field(
        default=None, metadata={"help": "truncate to this many tokens (default: the model's context)"}
    )
    padding: Literal["dynamic", "longest_in_dataset", "max_length", "none"] = field(
        default="dynamic",
        metadata={
            "help": "dynamic: each batch to its longest; longest_in_dataset: the book's; none: batch 1"
        },
    )
    padding_side: Literal["right", "left"] = field(default="right", metadata={"help": "where pad tokens go"})
    group_by_length: bool = field(
        default=False, metadata={"help": "batch examples of similar length (speed)"}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "use a random (seeded) subset of N train rows"}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "use a random (seeded) subset of N validation and N test rows"}
    )

    def __post_init__(self) -> None:
        if self.protocol is None:
            self.protocol = "official" if self.dataset == "imdb" else "book"
        for name in ("max_length", "max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive integer, got {value}")


@dataclass
class ModelArguments:
    """Which model and which parts of it learn."""

    model: str = field(
        default="gpt2",
        metadata={"help": "gpt2 / gpt2-medium / gpt2-large / gpt2-xl, a hub id, or a local model folder"},
    )
    implementation: Literal["hf_spam", "transformers"] = field(
        default="hf_spam",
        metadata={"help": "hf_spam: our GPT-2; transformers: AutoModelForSequenceClassification"},
    )
    weights: Literal["pretrained", "random"] = field(
        default="pretrained", metadata={"help": "random: the same architecture, randomly initialised"}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer hub id or folder (default: the model's, else gpt2)"}
    )
    pooling: Literal["last", "first", "mean"] | None = field(
        default=None,
        metadata={
            "help": "token(s) feeding the head, hf_spam GPT-2 only (default last); transformers' own head"
        },
    )
    trainable: Literal["all", "last_block", "last_two_blocks", "head"] = field(
        default="last_block", metadata={"help": "which parameters are trained (the book: last_block)"}
    )
    causal: bool = field(default=True, metadata={"help": "--causal false lets tokens attend to later ones"})
    dropout: float | None = field(
        default=0.0, metadata={"help": "dropout for the whole model (the book: 0.0); None keeps the model's"}
    )


@dataclass
class TrainArguments:
    """The training loop, evaluation, checkpoints and outputs."""

    output_dir: str = field(default="outputs", metadata={"help": "run folders are created inside"})
    run_name: str | None = field(
        default=None, metadata={"help": "run folder name (default: model-dataset-time)"}
    )
    seed: int = field(default=123, metadata={"help": "seeds the split, the init, shuffling and dropout"})
    num_epochs: int = field(default=5, metadata={"help": "training epochs"})
    batch_size: int = field(default=8, metadata={"help": "examples per batch and process"})
    eval_batch_size: int | None = field(default=None, metadata={"help": "default: batch_size"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches per optimizer step"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(
        default=0.1, metadata={"help": "AdamW weight decay (not on biases and norms)"}
    )
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = field(
        default="constant", metadata={"help": "learning-rate schedule (transformers.get_scheduler)"}
    )
    warmup_steps: int = field(default=0, metadata={"help": "linear warmup steps"})
    max_grad_norm: float | None = field(
        default=None, metadata={"help": "clip gradients to this norm (None: off)"}
    )
    eval_every: int = field(
        default=50, metadata={"help": "evaluate every N optimizer steps (0: epochs only)"}
    )
    metric_for_best: str = field(
        default="accuracy", metadata={"help": "validation metric that picks the best"}
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "stop after N evaluations without improvement"}
    )
    checkpoint_every: int | None = field(
        default=None,
        metadata={"help": "save a resumable checkpoint every N steps (default: every evaluation)"},
    )
    save_total_limit: int = field(default=2, metadata={"help": "resumable checkpoints kept"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "a checkpoint folder, or 'latest' in the run folder"}
    )
    drop_last: bool = field(
        default=True, metadata={"help": "drop the last incomplete train batch (the book)"}
    )
    report_to: str = field(
        default="none", metadata={"help": "accelerate trackers: tensorboard, wandb, ... or none"}
    )
    save_model: bool = field(default=True, metadata={"help": "save the final model with save_pretrained"})
    max_steps: int | None = field(
        default=None, metadata={"help": "stop after N optimizer steps (smoke runs)"}
    )
    push_to_hub: bool = field(
        default=False,
        metadata={
            "help": "push the run (model or adapter, tokenizer, metrics, card) after the test evaluation"
        },
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "repo to push to: name or namespace/name (needed by --push_to_hub)"}
    )
    hub_private: bool = field(default=False, metadata={"help": "create the hub repo private"})
    hub_revision: str | None = field(
        default=None, metadata={"help": "branch to push to (created if missing; default main)"}
    )

    def __post_init__(self) -> None:
        positive = ("num_epochs", "batch_size", "gradient_accumulation_steps", "save_total_limit")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"--learning_rate must be > 0, got {self.learning_rate}")
        self.eval_batch_size = self.eval_batch_size or self.batch_size
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id NAME (for example your-name/gpt2-spam)")
        if self.push_to_hub and not self.save_model:
            raise ValueError("--push_to_hub needs the saved model: drop --save_model false")


def parse_args(dataclass_types: tuple[type, ...], argv: list[str] | None = None) -> tuple[Any, ...]:
    """Parse ``dataclass_types`` from the command line; a leading ``*.yaml`` file gives the defaults.

    ``recipe.py config.yaml --learning_rate 1e-4`` reads the YAML file, then applies the flags after it.
    Unknown keys in the YAML file are an error naming them.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    if argv and argv[0].endswith((".yaml", ".yml")):
        path = Path(argv.pop(0))
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of argument names to values")
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown argument(s) {unknown}")
        parser.set_defaults(**values)
    return parser.parse_args_into_dataclasses(args=argv)
