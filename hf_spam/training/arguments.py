"""The training flags of the fine-tuning recipes: the loop, evaluation, checkpoints, outputs and the hub push.

Defaults follow the book's chapter 6: lr 5e-5, weight decay 0.1, 5 epochs, batch 8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..evaluation.metrics import BEST_METRICS
from ..models.adapters.arguments import DEFAULT_LEARNING_RATES


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
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "AdamW learning rate (default: 5e-5, the book's; an adapter method its own: "
            + ", ".join(f"{method} {rate:g}" for method, rate in DEFAULT_LEARNING_RATES.items())
            + ")"
        },
    )
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
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "activation checkpointing: each trained block keeps only its input and recomputes its "
            "activations in the backward pass (non-reentrant; same loss and gradients, less memory, ~1/3 "
            "more compute); with or without FSDP"
        },
    )
    save_model: bool = field(default=True, metadata={"help": "save the final model with save_pretrained"})
    max_steps: int | None = field(
        default=None, metadata={"help": "stop after N optimizer steps (smoke runs)"}
    )
    min_steps: int | None = field(
        default=None,
        metadata={
            "help": "train at least N optimizer steps: when num_epochs passes over a small training set "
            "(learning curves) give fewer, each epoch passes over it several times"
        },
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
        optional_positive = (
            "eval_batch_size", "max_steps", "min_steps", "checkpoint_every", "early_stopping_patience"
        )  # fmt: skip
        for name in positive + optional_positive:
            value = getattr(self, name)
            if (value is not None or name in positive) and value < 1:
                raise ValueError(f"--{name} must be >= 1, got {value}")
        for name in ("weight_decay", "warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.learning_rate is not None and self.learning_rate <= 0:
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
