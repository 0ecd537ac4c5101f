"""How much a serving variant (int8, onnxruntime, bfloat16, ...) changes a run's test accuracy.

The run's ``args.json`` records how its data was loaded and split (``DataArguments`` and the seed), so its
test split is rebuilt exactly (:func:`hf_spam.data.load_splits`). Both the float32 torch model and the
variant classify it as a user's Predictor would (the run's threshold and temperature, ``long_text``), and
the result goes to ``<run>/serving_accuracy.json`` (:data:`~hf_spam.run_folder.SERVING_ACCURACY_FILE`),
one entry per variant, beside the model it describes. ``recipes/predict.py --measure_accuracy`` writes it;
the Predictor logs the entry of the variant it serves.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..data import DataArguments, load_splits, subset
from ..errors import UserError
from ..run_folder import ARGS_FILE, MERGED_DIR, SERVING_ACCURACY_FILE, read_json, write_json
from .arguments import ServingArguments
from .predict import Predictor

logger = logging.getLogger(__name__)


def run_test_split(
    run_dir: str | os.PathLike, max_samples: int | None = None
) -> tuple[list[str], list[int], list[str] | None]:
    """The run's own test split, rebuilt from its ``args.json`` (a ``merged/`` folder: its run's): texts,
    label ids and class names (``None`` when the dataset has none); ``max_samples``: a random subset."""
    args = read_json(run_dir, ARGS_FILE)
    if args is None and Path(run_dir).name == MERGED_DIR:  # <run>/merged: the adapter run's own split
        args = read_json(Path(run_dir).parent, ARGS_FILE)
    if not args or "DataArguments" not in args:
        raise UserError(f"{Path(run_dir) / ARGS_FILE}: missing (or without DataArguments); the test split of "
                        "this run cannot be rebuilt")  # fmt: skip
    seed = next(
        (group["seed"] for group in args.values() if isinstance(group, dict) and "seed" in group), 123
    )
    data_args = DataArguments(**args["DataArguments"])
    splits, _ = load_splits(data_args, seed)
    test = subset(splits["test"], max_samples, seed)
    feature = test.features["label"]
    return list(test["text"]), [int(x) for x in test["label"]], getattr(feature, "names", None)


def measure_serving_accuracy(
    run_dir: str | os.PathLike, args: ServingArguments, max_samples: int | None = None
) -> dict[str, Any]:
    """Test accuracy of the float32 torch Predictor and of the one ``args`` describe, on the run's test split;
    the entry is added to ``<run>/serving_accuracy.json`` (other variants' entries kept) and returned."""
    run_dir = Path(run_dir)
    texts, labels, names = run_test_split(run_dir, max_samples)
    reference_args = replace(args, backend="torch", quantize="none", dtype="float32")
    decisions, seconds = {}, {}
    for name, serving in (("float32", reference_args), ("variant", args)):
        predictor = Predictor.from_arguments(run_dir, serving)
        if names is not None and list(predictor.id2label.values()) != list(names):
            raise UserError(f"{run_dir}: the model's classes {list(predictor.id2label.values())} are not the "
                            f"test split's {names}")  # fmt: skip
        start = time.perf_counter()
        probabilities = predictor.probabilities(texts)
        seconds[name] = round(time.perf_counter() - start, 3)
        decisions[name] = [predictor.decide(row) for row in probabilities.tolist()]
        del predictor
    reference, variant = (agreement(decisions[k], labels) for k in ("float32", "variant"))
    entry = {
        "split": "test",
        "n": len(texts),
        "max_samples": max_samples,
        "float32_accuracy": reference,
        "accuracy": variant,
        "delta_points": round(100 * (variant - reference), 4),
        "agreement": agreement(decisions["float32"], decisions["variant"]),
        "seconds": seconds,
        "serving": asdict(args),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
    }
    records = read_json(run_dir, SERVING_ACCURACY_FILE) or {}
    records[args.variant()] = entry
    write_json(run_dir / SERVING_ACCURACY_FILE, records)
    message = "%s: test accuracy %.4f vs float32 %.4f (%+.2f points, %d texts) -> %s"
    logger.info(message, args.variant(), variant, reference, entry["delta_points"], len(texts),
                run_dir / SERVING_ACCURACY_FILE)  # fmt: skip
    return entry


def agreement(a: list[int], b: list[int]) -> float:
    """The fraction of positions where ``a`` and ``b`` hold the same class."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / max(len(a), 1)
