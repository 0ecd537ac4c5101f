"""The data step every recipe runs first: load as ``--dataset``/``--data_source`` say, split, subset,
check -- so bad labels or an unusable split stop a run before any model loads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from .arguments import DataArguments
from .sources import load_dataset_by_name, named_dataset
from .splits import SplitReport, check_splits, split

logger = logging.getLogger(__name__)


def load_kwargs(args: DataArguments) -> dict[str, Any]:
    """The loader keyword arguments that ``args`` give (file-only ones only for files)."""
    kwargs: dict[str, Any] = {
        "clean": args.clean_text,
        "on_bad_line": args.on_bad_line,
        "label_map": args.label_map,
    }
    if named_dataset(args.dataset) is None:
        kwargs |= {
            "text_column": args.text_column,
            "label_column": args.label_column,
            "label_names": args.label_names,
            "text_pair_column": args.text_pair_column,
        }
    elif args.label_names is not None:
        raise ValueError(
            f"--label_names is for file datasets; {args.dataset}'s classes are fixed "
            "(use --label_map to rename labels)"
        )
    return kwargs


def load_splits(
    args: DataArguments, seed: int, fractions: tuple[float, ...] | None = None
) -> tuple[DatasetDict, SplitReport]:
    """Load, split by ``args.protocol``, keep ``max_*_samples`` random rows, then ``train_size`` balanced
    training rows; with the split report.

    The report's ``load_report`` counts rows read / kept / skipped per file. Raises
    :class:`~hf_spam.errors.DataError` for bad rows (unless ``--on_bad_line skip``), bad labels,
    or a split with no rows or lacking a class, also after the ``max_*_samples`` cut. ``args.split_seed``,
    when set, replaces ``seed`` for the split and the ``max_*_samples`` subsets (runs with different seeds
    on the same split); the ``train_size`` subset is always drawn with ``seed`` (:func:`balanced_subset`:
    a learning curve's seeds differ in which rows are labelled, never in validation or test).
    """
    draw_seed = seed
    seed = seed if args.split_seed is None else args.split_seed
    data, load_report = load_dataset_by_name(
        args.dataset, args.data_source, return_report=True, **load_kwargs(args)
    )
    source = load_report.source
    splits, report = split(
        data,
        args.protocol,
        seed=seed,
        dedup=args.dedup,
        fractions=fractions,
        source=source,
        return_report=True,
    )
    report.load_report = load_report
    limits = {
        "train": args.max_train_samples,
        "validation": args.max_eval_samples,
        "test": args.max_eval_samples,
    }
    cut = DatasetDict({name: subset(ds, limits[name], seed) for name, ds in splits.items()})
    if args.train_size is not None:
        cut["train"] = balanced_subset(cut["train"], args.train_size, draw_seed)
    check_splits(cut, source, report.fractions)
    return cut, report


def subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded random subset of ``n`` rows (official test sets are sorted by label: never the first n)."""
    if n is None or n >= len(ds):
        return ds
    logger.info("using %d of %d rows (a random subset, seed %d)", n, len(ds), seed)
    return ds.shuffle(seed=seed).select(range(n)).flatten_indices()


def balanced_order(labels: Sequence[int], seed: int) -> list[int]:
    """Every row index once, in the order learning-curve subsets take them: each class's rows shuffled with
    ``seed``, then dealt one class after another (class 0's first, class 1's first, ..., class 0's second,
    ...); a class that runs out is passed over. So the first ``n`` are as balanced as the classes allow,
    and the first ``n`` of this order are the first ``n`` of every longer prefix: subsets are nested."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    queues = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    longest = max((len(q) for q in queues), default=0)
    return [q[i] for i in range(longest) for q in queues if i < len(q)]


def balanced_subset(ds: Dataset, n: int, seed: int) -> Dataset:
    """The first ``n`` rows of :func:`balanced_order`: a balanced, nested, seeded training subset for
    learning curves (``--train_size``); ``ds`` itself when ``n`` covers every row."""
    if n >= len(ds):
        logger.info("--train_size %d: the training split has %d rows, all used", n, len(ds))
        return ds
    logger.info("--train_size %d: %d of %d training rows, balanced (seed %d)", n, n, len(ds), seed)
    return ds.select(balanced_order(ds["label"][:], seed)[:n]).flatten_indices()
