"""A fine-tuning run's inputs: the tokenised splits and their data loaders.

Training batches are shuffled (seeded); evaluation batches run longest first (batches of similar lengths
pad least), and :func:`loader_order` / :func:`in_dataset_order` put their predictions back in each split's
order. With the frozen-prefix cache, every loader's collator adds the cached states to its batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import DatasetDict, concatenate_datasets
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from ..data import DataArguments, load_splits, longest_length, make_dataloader, padding_collator, tokenize
from ..run_folder import sample_examples
from .arguments import TrainArguments
from .prefix_cache import PrefixCache

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Tokenised splits, label names, and the length every example is padded to (if fixed)."""

    tokens: DatasetDict
    id2label: dict[int, str]
    pad_to: int | None
    split_report: Any
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few test texts, for the app

    def token_ids(self) -> list[list[int]]:
        """Every example's token ids, all splits (what the frozen-prefix cache computes states for)."""
        return [ids for ds in self.tokens.values() for ids in ds["input_ids"]]


def prepare_data(args: DataArguments, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreparedData:
    """:func:`~hf_spam.data.load_splits`, then tokenise (padding to a fixed length is the collator's job)."""
    splits, report = load_splits(args, seed)
    tokens = tokenize(splits, tokenizer, max_length=args.max_length)
    pad_to = None
    if args.padding == "longest_in_dataset":
        # the book pads every split to the longest training example and truncates val/test to it
        pad_to = longest_length(tokens["train"])
        tokens = DatasetDict(
            {
                name: ds if name == "train" else tokenize(splits[name], tokenizer, max_length=pad_to)
                for name, ds in tokens.items()
            }
        )
    names = splits["train"].features["label"].names
    id2label = dict(enumerate(names))
    return PreparedData(
        tokens, id2label, pad_to, report, sample_examples(splits["test"], id2label, seed=seed)
    )


def passes_per_epoch(examples: int, train_args: TrainArguments, num_processes: int = 1) -> int:
    """How many times one epoch goes over the training set: 1, or with ``--min_steps`` as many as
    ``num_epochs`` epochs need to make at least that many optimizer steps (on ``num_processes``)."""
    if not train_args.min_steps:
        return 1
    per_step = train_args.batch_size * train_args.gradient_accumulation_steps * num_processes
    passes = 1
    while (examples * passes // per_step) * train_args.num_epochs < train_args.min_steps:
        passes += 1
    return passes


def make_loaders(
    data: PreparedData,
    tokenizer: PreTrainedTokenizerBase,
    args: DataArguments,
    train_args: TrainArguments,
    cache: PrefixCache | None = None,
    num_processes: int = 1,
) -> dict[str, DataLoader]:
    """The shuffled training loader (``train_shuffled``), and an evaluation loader per split that runs
    longest first; with ``cache``, their batches carry the cached frozen-prefix states. With ``--min_steps``
    the training loader's epoch goes over the training set :func:`passes_per_epoch` times."""
    common = {"padding": args.padding, "padding_side": args.padding_side, "pad_to": data.pad_to}

    def collate(ds: Any, batch_size: int) -> Any:
        padded = padding_collator(ds, tokenizer, batch_size, **common)
        return padded if cache is None else cache.collator(padded)

    train = data.tokens["train"]
    passes = passes_per_epoch(len(train), train_args, num_processes)
    if passes > 1:
        logger.info(
            "--min_steps %d: each epoch goes over the %d training rows %d times",
            train_args.min_steps, len(train), passes,
        )  # fmt: skip
        train = concatenate_datasets([train] * passes)
    shuffled = make_dataloader(
        train, tokenizer, train_args.batch_size, shuffle=True, seed=train_args.seed,
        group_by_length=args.group_by_length, drop_last=train_args.drop_last,
        collate_fn=collate(train, train_args.batch_size), **common,
    )  # fmt: skip
    loaders = {"train_shuffled": shuffled}
    eval_batch_size = train_args.eval_batch_size or (
        1 if args.padding == "none" else 4 * train_args.batch_size
    )
    for name, ds in data.tokens.items():
        loaders[name] = make_dataloader(
            ds, tokenizer, eval_batch_size, group_by_length=True, collate_fn=collate(ds, eval_batch_size),
            **common,
        )  # fmt: skip
    return loaders


def loader_order(loader: DataLoader) -> torch.Tensor:
    """The dataset index of each example in the order an (unshuffled) loader yields them."""
    sampler = loader.batch_sampler
    return torch.tensor([i for batch in sampler for i in batch], dtype=torch.long)


def in_dataset_order(
    outputs: tuple[torch.Tensor, torch.Tensor], order: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels put back in the dataset's order (``outputs`` came in ``order``)."""
    restored = []
    for tensor in outputs:
        out = torch.empty_like(tensor)
        out[order] = tensor
        restored.append(out)
    return restored[0], restored[1]
