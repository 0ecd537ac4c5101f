"""Padding and batching of tokenised Datasets: the collator, a length-grouped sampler, the DataLoader.

Padding strategies (named after the seeds' experiments):

* ``longest_in_dataset`` (the book): every example padded to one length -- ``pad_to`` if given
  (pass the longest *training* length so validation/test match, and tokenize those with
  ``max_length`` = that length, as the book truncates them), else the longest example in ``ds``;
* ``max_length``: every example padded to ``pad_to`` or the tokenizer's ``model_max_length``;
* ``dynamic``: each batch padded to its own longest example;
* ``none``: no padding at all, so ``batch_size`` must be 1.

Padding goes on the right or the left (``padding_side``), chosen per call: the shared tokenizer is
not modified. Pads use ``tokenizer.pad_token_id``; ``attention_mask`` is 0 on pads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow.compute as pc
import torch
from datasets import Dataset
from torch.utils.data import BatchSampler, DataLoader
from transformers import PreTrainedTokenizerBase
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

logger = logging.getLogger(__name__)

Padding = Literal["longest_in_dataset", "max_length", "dynamic", "none"]
PaddingSide = Literal["right", "left"]
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # segment ids: sentence pairs (encoders)


def example_lengths(ds: Dataset) -> list[int]:
    """Token count of every example (``len(input_ids)``), read from arrow without decoding rows."""
    return pc.list_value_length(ds.with_format("arrow")["input_ids"]).to_pylist()


def longest_length(ds: Dataset) -> int:
    """The longest ``input_ids`` in a tokenised Dataset (0 if empty)."""
    return max(example_lengths(ds), default=0)


@dataclass
class PaddingCollator:
    """Pads a list of examples with ``tokenizer.pad`` into long tensors ``input_ids``,
    ``attention_mask``, ``token_type_ids`` (where the examples have them: sentence pairs) and ``labels``
    (from ``label``); other columns are left out.

    ``padding`` is ``"longest"`` (pad to the batch's longest), ``"max_length"`` (pad to
    ``max_length``; a longer example is an error, not a silent cut) or ``"do_not_pad"``.
    """

    tokenizer: PreTrainedTokenizerBase
    padding: Literal["longest", "max_length", "do_not_pad"] = "longest"
    max_length: int | None = None
    padding_side: PaddingSide = "right"

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        inputs = [{key: example[key] for key in MODEL_INPUTS if key in example} for example in features]
        if self.padding == "max_length":
            longest = max(len(example["input_ids"]) for example in inputs)
            if longest > self.max_length:  # type: ignore[operator]
                raise ValueError(
                    f"an example has {longest} tokens, more than the padding length {self.max_length}; "
                    f"tokenize with max_length={self.max_length}"
                )
        if self.padding == "do_not_pad" and len(inputs) > 1:
            raise ValueError("padding='none' needs batch_size=1 (unpadded examples of different lengths)")
        batch = self.tokenizer.pad(
            inputs,
            padding=self.padding,
            max_length=self.max_length,
            padding_side=self.padding_side,
            return_attention_mask=True,
            return_tensors="pt",
        )
        keys = [key for key in MODEL_INPUTS if key != "token_type_ids" or key in inputs[0]]  # pairs only
        out = {key: batch[key].long() for key in keys}
        if "label" in features[0]:
            out["labels"] = torch.tensor([int(example["label"]) for example in features], dtype=torch.long)
        return out


class _EpochLengthGroupedSampler(LengthGroupedSampler):
    """transformers' :class:`LengthGroupedSampler` (random megabatches of ``mega_batch_mult *
    batch_size`` examples, each sorted by length), reseeded from ``seed + epoch`` on every pass."""

    def __init__(
        self, lengths: list[int], batch_size: int, seed: int, shuffle: bool, mega_batch_mult: int | None
    ):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.shuffle, self.mega_batch_mult, self.epoch = seed, shuffle, mega_batch_mult, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next pass yields."""
        self.epoch = epoch

    def epoch_generator(self) -> torch.Generator:
        """A generator seeded with ``seed + epoch``: the same epoch always gives the same order."""
        return torch.Generator().manual_seed(self.seed + self.epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:  # longest first, no randomness (evaluation)
            return iter(sorted(range(len(self.lengths)), key=lambda i: -self.lengths[i]))
        return iter(
            get_length_grouped_indices(
                self.lengths, self.batch_size, self.mega_batch_mult, generator=self.epoch_generator()
            )
        )


class LengthGroupedBatchSampler(BatchSampler):
    """Batches of examples of similar length, in shuffled order; every index once per epoch.

    Indices come from transformers' length-grouped sampling (seeded per epoch), are cut into
    batches of ``batch_size``, and the batch order is shuffled. The batch holding the longest
    example stays first (out-of-memory shows at once) and a short final batch stays last. With
    ``shuffle=False`` batches run from longest to shortest, with no randomness.

    Deterministic for ``seed`` and the epoch: :meth:`set_epoch` picks an epoch, and each full
    pass moves on to the next one. Works under ``accelerate``: it is a ``BatchSampler`` with
    ``batch_size``, ``drop_last`` and a ``sampler`` with ``set_epoch``, which accelerate's
    ``BatchSamplerShard`` and ``DataLoaderShard.set_epoch`` use.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        drop_last: bool = False,
        shuffle: bool = True,
        seed: int = 123,
        mega_batch_mult: int | None = None,
    ) -> None:
        sampler = _EpochLengthGroupedSampler(list(lengths), batch_size, seed, shuffle, mega_batch_mult)
        super().__init__(sampler, batch_size, drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next pass yields."""
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[list[int]]:
        sampler: _EpochLengthGroupedSampler = self.sampler  # type: ignore[assignment]
        batches = list(super().__iter__())
        # A short final batch stays last: accelerate's BatchSamplerShard expects only the last one short.
        tail = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        if sampler.shuffle and len(batches) > 2:
            order = torch.randperm(len(batches) - 1, generator=sampler.epoch_generator()).tolist()
            batches = [batches[0]] + [batches[i + 1] for i in order]
        yield from batches + tail
        sampler.set_epoch(sampler.epoch + 1)


def padding_collator(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    padding: Padding = "dynamic",
    padding_side: PaddingSide = "right",
    pad_to: int | None = None,
) -> PaddingCollator:
    """The collator that pads ``ds``'s batches as ``padding`` says (see this module's docstring)."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', not {padding_side!r}")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token (hf_spam.data.load_tokenizer sets pad = eos)")
    if padding == "dynamic":
        return PaddingCollator(tokenizer, "longest", None, padding_side)
    if padding == "none":
        if batch_size != 1:
            raise ValueError(f"padding='none' needs batch_size=1, got batch_size={batch_size}")
        return PaddingCollator(tokenizer, "do_not_pad", None, padding_side)
    if padding == "longest_in_dataset":
        length = pad_to or longest_length(ds)
    elif padding == "max_length":
        length = pad_to or tokenizer.model_max_length
        if length > 1_000_000:
            raise ValueError("padding='max_length' needs pad_to: the tokenizer has no model_max_length")
    else:
        raise ValueError(f"unknown padding {padding!r}; use longest_in_dataset, max_length, dynamic or none")
    logger.info("padding every example to %d tokens (%s, %s side)", length, padding, padding_side)
    return PaddingCollator(tokenizer, "max_length", length, padding_side)


def make_dataloader(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    padding: Padding = "dynamic",
    padding_side: PaddingSide = "right",
    pad_to: int | None = None,
    shuffle: bool = False,
    seed: int = 123,
    group_by_length: bool = False,
    drop_last: bool = False,
    num_workers: int = 0,
    collate_fn: Callable[[Sequence[dict]], dict[str, torch.Tensor]] | None = None,
) -> DataLoader:
    """A DataLoader over a tokenised Dataset whose batches are ``{"input_ids", "attention_mask",
    "labels"}`` long tensors, padded by ``padding`` (see this module's docstring).

    ``shuffle`` uses a ``torch.Generator`` seeded with ``seed`` (the same order for the same seed).
    ``group_by_length`` batches examples of similar length (:class:`LengthGroupedBatchSampler`,
    shuffled when ``shuffle``, longest-first otherwise) so ``dynamic`` padding wastes less.
    ``collate_fn`` replaces the padding collator (e.g. one that wraps :func:`padding_collator`'s).
    """
    collate = collate_fn or padding_collator(ds, tokenizer, batch_size, padding, padding_side, pad_to)
    if group_by_length:
        sampler = LengthGroupedBatchSampler(example_lengths(ds), batch_size, drop_last, shuffle, seed)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
        collate_fn=collate,
        num_workers=num_workers,
    )
