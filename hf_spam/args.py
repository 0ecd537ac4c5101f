"""Argument dataclasses shared by every recipe, parsed with ``HfArgumentParser`` (CLI and/or YAML).

Defaults follow the book's chapter 6 (lr 5e-5, weight decay 0.1, 5 epochs, batch 8, last token, last block
trainable, dropout 0), except padding: ``dynamic`` padding gives the same predictions (pooling reads the
attention mask) for much less compute; ``--padding longest_in_dataset`` is the book's.
"""

from __future__ import annotations

import logging
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args, get_origin, get_type_hints

import yaml
from transformers import HfArgumentParser

from .data import named_dataset, parse_label_map
from .metrics import METRIC_NAMES

logger = logging.getLogger(__name__)
UNIONS = (typing.Union, types.UnionType)

# validation metrics a run computes that can pick the best checkpoint (see hf_spam.metrics)
BEST_METRICS = ("loss", *(name for name in METRIC_NAMES if name != "confusion_matrix"))


@dataclass
class DataArguments:
    """Which data, how it is split, tokenised and batched."""

    dataset: str = field(
        default="sms_spam",
        metadata={
            "help": "sms_spam, imdb, or csv/tsv/jsonl/parquet files: paths, a glob ('data/*.csv') or "
            "paths separated by commas",
            "nargs": "+",  # a shell-expanded glob gives several paths; joined with commas below
        },
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
    label_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "class names in id order, for files (default: sorted names, or '0'..'n-1' for ids); "
            "a label equal to one of them up to case and surrounding spaces is that class"
        },
    )
    label_map: dict[str, str] | str | None = field(
        default=None,
        metadata={
            "help": "rename raw labels first: 'Spam=spam,spam =spam' (labels as written), or a YAML mapping"
        },
    )
    on_bad_line: Literal["error", "skip"] = field(
        default="error", metadata={"help": "a bad row stops loading (error) or is skipped and reported"}
    )
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
    split_seed: int | None = field(
        default=None,
        metadata={
            "help": "seeds the split and the max_*_samples subsets (default: --seed); fix it to vary "
            "--seed on the same split"
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.dataset, (list, tuple)):
            self.dataset = ",".join(self.dataset)
        parse_label_map(self.label_map)  # a malformed map is an error now, not after loading
        if self.label_names is not None and named_dataset(self.dataset) is not None:
            raise ValueError(f"--label_names is for file datasets; {self.dataset}'s classes are fixed")
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
    trainable: Literal["all", "last_block", "last_two_blocks", "head", "lora"] = field(
        default="last_block",
        metadata={"help": "which parameters are trained (the book: last_block); lora: adapters + head"},
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
    eval_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "examples per evaluation batch (evaluation runs longest first); default: 4 x batch_size "
            "(1 with --padding none)"
        },
    )
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
        metadata={
            "help": "save a resumable checkpoint every N optimizer steps, as well as at each epoch end "
            "(default: at each epoch end only)"
        },
    )
    save_total_limit: int = field(default=2, metadata={"help": "resumable checkpoints kept"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "a checkpoint folder, or 'latest' in the run folder"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "delete an existing run folder of the same name (default: that is an error)"},
    )
    drop_last: bool = field(
        default=True, metadata={"help": "drop the last incomplete train batch (the book)"}
    )
    report_to: str = field(
        default="none",
        metadata={"help": "accelerate trackers, comma-separated: tensorboard, wandb, ..., all or none"},
    )
    cache_frozen: Literal["auto", "off"] = field(
        default="auto",
        metadata={
            "help": "auto: when the embeddings and lower blocks are frozen and have no dropout, compute "
            "their output once per example (cached on disk, shared by runs) and train/evaluate the upper "
            "blocks from it; the log says whether and why; off: run the whole model every step"
        },
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
        optional_positive = ("eval_batch_size", "max_steps", "checkpoint_every", "early_stopping_patience")
        for name in positive + optional_positive:
            value = getattr(self, name)
            if (value is not None or name in positive) and value < 1:
                raise ValueError(f"--{name} must be >= 1, got {value}")
        for name in ("weight_decay", "warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"--learning_rate must be > 0, got {self.learning_rate}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(
                f"--max_grad_norm must be > 0 (or left out: no clipping), got {self.max_grad_norm}"
            )
        if self.warmup_steps and self.lr_scheduler == "constant":
            raise ValueError(
                "--warmup_steps has no effect with --lr_scheduler constant: "
                "use constant_with_warmup, linear or cosine"
            )
        if self.metric_for_best.removeprefix("val_") not in BEST_METRICS:
            raise ValueError(f"--metric_for_best {self.metric_for_best!r}: choose one of {BEST_METRICS}")
        if self.resume_from_checkpoint and self.overwrite_output_dir:
            raise ValueError("--resume_from_checkpoint and --overwrite_output_dir exclude each other")
        check_trackers(self.report_to)
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id NAME (for example your-name/gpt2-spam)")
        if self.push_to_hub and not self.save_model:
            raise ValueError("--push_to_hub needs the saved model: drop --save_model false")


def check_trackers(report_to: str) -> None:
    """``--report_to``: ``none``, ``all`` or accelerate tracker names that are installed."""
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    names = [name.strip() for name in report_to.split(",") if name.strip()]
    if names in ([], ["none"], ["all"]):
        return
    known = [t.value for t in LoggerType if t.value != "all"]
    available = [str(t.value) for t in get_available_trackers()]
    for name in names:
        if name not in known:
            raise ValueError(f"--report_to {name!r}: not an accelerate tracker; choose from {known} or none")
        if name not in available:
            raise ValueError(f"--report_to {name}: the {name} package is not installed (pip install {name})")


def parse_args(dataclass_types: tuple[type, ...], argv: list[str] | None = None) -> tuple[Any, ...]:
    """Parse ``dataclass_types`` from the command line; a leading ``*.yaml`` file gives the defaults.

    ``recipe.py config.yaml --learning_rate 1e-4`` reads the YAML file, then applies the flags after it.
    Unknown keys in the YAML file are an error naming them; so is a flag abbreviated (``--learning_rat``).
    Every value, from the YAML file or the command line, is checked against its field's type and choices
    (a :class:`ValueError` naming the flag), before anything is loaded.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = ArgumentParser(dataclass_types, allow_abbrev=False)
    path = None
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
    *parsed, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        raise ValueError(f"unrecognized arguments: {' '.join(unknown)} (no abbreviations; see --help)")
    for group in parsed:
        try:
            check_field_values(group)
        except ValueError as error:
            raise ValueError(f"{path}: {error}" if path else str(error)) from None
    return tuple(parsed)


class ArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` whose errors are a :class:`ValueError` (one line, no usage text, no exit)."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        raise ValueError(f"{message} (see --help)")


def check_field_values(group: Any) -> None:
    """Each field of the dataclass ``group`` holds a value of its type and, for ``Literal``, one of its
    choices (argparse leaves YAML values, which it takes as defaults, unchecked)."""
    hints = get_type_hints(type(group))
    for item in fields(group):
        value, hint = getattr(group, item.name), hints[item.name]
        options = [a for a in get_args(hint) if a is not type(None)] if get_origin(hint) in UNIONS else [hint]
        if value is None and len(options) < len(get_args(hint)):
            continue  # Optional
        if len(options) != 1:
            continue
        kind = options[0]
        if get_origin(kind) is Literal:
            if value not in get_args(kind):
                raise ValueError(f"--{item.name} {value!r}: choose one of {list(get_args(kind))}")
        elif kind in (int, float, bool, str) and not _is_instance(value, kind):
            raise ValueError(f"--{item.name} {value!r}: expected {kind.__name__}")


def _is_instance(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)
