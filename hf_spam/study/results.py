"""Read a study's run folders back: per row, what it was (model, weights, pooling, ...), its metrics over
seeds, and its test predictions (correct or not, per example) for the paired comparisons."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..run_folder import ARGS_FILE, HISTORY_FILE, METRICS_FILE, PREDICTIONS_FILE, read_json
from .runner import RunRecord
from .spec import Row
from .stats import bootstrap_interval

logger = logging.getLogger(__name__)

# table column -> how to read it from metrics.json
METRICS = {
    "train_accuracy": lambda m: m["splits"]["train"]["accuracy"],
    "val_accuracy": lambda m: m["splits"]["validation"]["accuracy"],
    "test_accuracy": lambda m: m["splits"]["test"]["accuracy"],
    "test_f1": lambda m: m["splits"]["test"]["f1"],
    "test_roc_auc": lambda m: m["splits"]["test"]["roc_auc"],
    "training_minutes": lambda m: m["seconds"]["training"] / 60,
    "examples_per_second": lambda m: m["training"]["examples_per_second"],
    "trainable_parameters": lambda m: m["parameters"]["trainable"],
    "peak_memory_mb": lambda m: m["peak_memory"]["mb"],
    "adapter_mb": lambda m: (m["training"]["details"].get("adapter") or {}).get("megabytes"),
}


@dataclass
class RowResult:
    """One row over its seeds: description, metric values per seed, test correctness per seed."""

    name: str
    recipe: str
    note: str
    describe: dict[str, str] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)  # seeds with a finished run
    values: dict[str, list[float]] = field(default_factory=dict)
    prediction_seeds: list[int] = field(default_factory=list)
    correct: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> 0/1 per test example
    labels: dict[int, np.ndarray] = field(default_factory=dict)
    histories: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    not_run: list[int] = field(default_factory=list)  # seeds never started (a trimmed or unfinished study)
    run_seconds: list[float] = field(default_factory=list)  # every reported phase of each finished run
    devices: list[str] = field(default_factory=list)  # what each finished run ran on (see run_device)
    train_examples: list[int | None] = field(default_factory=list)  # training rows each finished run used
    test_interval: tuple[float, float] | None = None

    def summary(self, key: str) -> dict[str, float | None]:
        """Mean and sample standard deviation over seeds (std None with one seed), NaN-free values only."""
        values = [v for v in self.values.get(key, []) if v is not None and not np.isnan(v)]
        if not values:
            return {"mean": None, "std": None, "n": 0}
        std = float(np.std(values, ddof=1)) if len(values) > 1 else None
        return {"mean": float(np.mean(values)), "std": std, "n": len(values)}

    def correctness(self, seeds: list[int]) -> np.ndarray:
        """``(len(seeds), n_examples)`` 0/1 matrix of the given seeds."""
        return np.stack([self.correct[seed] for seed in seeds])


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, predicted)`` of a run's ``test_predictions.csv``, in its (split) order."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([int(r["label"]) for r in rows]), np.array([int(r["predicted"]) for r in rows])


def _group(args: dict[str, Any], suffix: str) -> dict[str, Any]:
    return next((v for k, v in args.items() if k.endswith(suffix) and isinstance(v, dict)), {})


def describe(recipe: str, args: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    """The book's descriptive columns from a run's ``args.json`` and ``metrics.json``."""
    model_args, data = _group(args, "ModelArguments"), _group(args, "DataArguments")
    features, train = _group(args, "FeatureArguments"), _group(args, "TrainArguments")
    details = metrics.get("training", {}).get("details", {})
    prompting = _group(args, "InContextArguments")
    if prompting:  # an in-context run: nothing trained, the label words scored after k demonstrations
        k = prompting.get("k", 0)
        shots = "zero-shot" if not k else f"{k}-shot {prompting.get('demos', 'random')}"
        calibrated = ", calibrated" if (details.get("calibration") or {}).get("applied") else ""
        described = {"model": f"{metrics['model']} ({shots}{calibrated})", "pooled": "label words"}
        return described | {"weights": str(prompting.get("weights", "")), "trainable": "none", "padding": "-"}
    if features:
        if features.get("method") == "knn":
            return {
                "model": f"{metrics['model']} (frozen) + {details.get('best_k', 'k')}-NN vote",
                "weights": str(features.get("weights", "")),
                "pooled": str(features.get("pooling") or "default"),
                "trainable": "none (index)",
                "padding": "-",
            }
        if features.get("method") != "embeddings":
            name = f"{features.get('method', 'tfidf')} {details.get('analyzer', 'word')} n-grams + LR"
            return {"model": name, "weights": "-", "pooled": "-", "trainable": "LR", "padding": "-"}
        return {
            "model": f"{metrics['model']} (frozen) + LR",
            "weights": str(features.get("weights", "")),
            "pooled": str(features.get("pooling") or "default"),
            "trainable": "LR",
            "padding": "-",
        }
    model = str(metrics.get("model", ""))
    if model_args.get("causal") is False:
        model += ", no causal mask"
    pooled = model_args.get("pooling") or ("[CLS]" if recipe == "bert" else "last")
    padding = str(data.get("padding", ""))
    if train.get("gradient_accumulation_steps", 1) > 1:
        padding += f", batch {train.get('batch_size')} x {train['gradient_accumulation_steps']} accumulated"
    return {
        "model": model,
        "weights": str(model_args.get("weights", "")),
        "pooled": str(pooled),
        "trainable": str(model_args.get("trainable", "")),
        "padding": padding,
    }


def run_device(metrics: dict[str, Any]) -> str:
    """The device a run reports, with its mixed precision when not fp32: "cuda: NVIDIA H100, bf16"."""
    device = metrics.get("device") or "unknown device"
    precision = metrics.get("mixed_precision")
    return f"{device}, {precision}" if precision and precision != "no" else device


def collect(rows: list[Row], records: list[RunRecord], resamples: int) -> list[RowResult]:
    """One :class:`RowResult` per row, from the run folders of ``records`` (finished or skipped runs)."""
    results = []
    for row in rows:
        result = RowResult(row.name, row.recipe.name, row.note)
        for record in (r for r in records if r.row == row.name):
            metrics = read_json(record.run_dir, METRICS_FILE)
            if metrics is None:
                if record.status == "not_run" and record.error is None:
                    result.not_run.append(record.seed)
                    continue
                error = record.error or "no metrics.json (not run yet)"
                result.failures.append({"seed": record.seed, "error": error, "log": str(record.log)})
                continue
            result.seeds.append(record.seed)
            seconds = metrics.get("seconds", {})
            result.run_seconds.append(sum(v for v in seconds.values() if isinstance(v, (int, float))))
            result.devices.append(run_device(metrics))
            result.train_examples.append((metrics.get("split_sizes") or {}).get("train"))
            for key, read in METRICS.items():
                try:
                    result.values.setdefault(key, []).append(read(metrics))
                except (KeyError, TypeError):
                    result.values.setdefault(key, []).append(None)
            if not result.describe:
                args = read_json(record.run_dir, ARGS_FILE) or {}
                result.describe = describe(row.recipe.name, args, metrics)
            result.histories[record.seed] = read_json(record.run_dir, HISTORY_FILE) or []
            predictions = record.run_dir / PREDICTIONS_FILE
            if predictions.is_file():
                labels, predicted = read_predictions(predictions)
                result.prediction_seeds.append(record.seed)
                result.labels[record.seed], result.correct[record.seed] = labels, (labels == predicted)
            else:
                logger.warning(
                    "%s: no %s; no interval or paired test for it", record.run_dir, PREDICTIONS_FILE
                )
        if result.prediction_seeds and len({len(result.correct[s]) for s in result.prediction_seeds}) == 1:
            result.test_interval = bootstrap_interval(result.correctness(result.prediction_seeds), resamples)
        results.append(result)
    return results
