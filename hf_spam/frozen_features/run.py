"""The frozen-features run behind ``recipes/frozen_features.py``: features (frozen embeddings, TF-IDF or bag
of words) + logistic regression with ``C`` chosen on validation, written to a run folder in the layout of
every recipe (:func:`hf_spam.run_folder.metrics_record`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataArguments, SplitReport, dataset_label, load_splits
from ..evaluation.operating_point import OperatingPointArguments, select_operating_point
from ..run_folder import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    claim_run_dir,
    metrics_record,
    write_args,
    write_json,
    write_predictions,
)
from .arguments import FeatureArguments
from .extract import embedding_inputs
from .fit import FitResult, embedding_pipeline, fit_text, fit_with_validation, probability_metrics

logger = logging.getLogger(__name__)


def run_frozen_features(args: FeatureArguments, data_args: DataArguments) -> dict[str, Any]:
    """Features (frozen embeddings, TF-IDF or bag of words) + logistic regression with ``C`` chosen on
    validation; writes ``metrics.json`` and ``args.json`` to the run folder and returns the metrics."""
    name = f"frozen-{Path(args.model).name}" if args.method == "embeddings" else args.method
    run_dir = Path(args.output_dir) / (
        args.run_name or f"{name}-{dataset_label(data_args.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    claim_run_dir(run_dir, args.overwrite_output_dir, resumable=False)  # before any data or model loads
    splits, report = load_splits(data_args, args.seed)
    if args.method == "embeddings":
        inputs, info, backbone = embedding_inputs(args, data_args, splits)
        pipeline = embedding_pipeline(args.max_iter, args.seed)
        device, backbone_parameters = backbone.device, backbone.num_parameters()
        fit = fit_with_validation(pipeline, *inputs["train"], *inputs["validation"], C_grid=args.C_grid)
    else:
        inputs = {n: (part["text"][:], np.asarray(part["label"][:])) for n, part in splits.items()}
        info, device, backbone_parameters = {"extraction_seconds": 0.0}, torch.device("cpu"), 0
        fit, info["analyzer"], info["val_accuracy_by_analyzer"] = fit_text(args, inputs)
        info["feature_dim"] = len(fit.model[0].vocabulary_)
    start = time.perf_counter()
    probabilities = {n: fit.model.predict_proba(x) for n, (x, _) in inputs.items()}  # once per split
    labels = {n: y for n, (_, y) in inputs.items()}
    results = {n: probability_metrics(p, labels[n], fit.model.classes_) for n, p in probabilities.items()}
    point = operating_point_of(
        probabilities, labels, dict(enumerate(splits["train"].features["label"].names))
    )
    eval_seconds = time.perf_counter() - start
    write_predictions(run_dir / PREDICTIONS_FILE, probabilities["test"], labels["test"])
    metrics = _metrics(
        args, data_args, run_dir, report, fit, results, info, device, backbone_parameters, eval_seconds, point
    )
    write_args(run_dir, args, data_args)
    write_json(run_dir / METRICS_FILE, metrics)
    logger.info("run folder: %s; test accuracy %.4f", run_dir, results["test"]["accuracy"])
    return metrics


def operating_point_of(
    probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray], id2label: dict[int, str]
) -> dict[str, Any]:
    """The operating-point record of metrics.json (threshold for the best validation F1, no calibration),
    from the log of each split's probabilities (softmax of them gives the probabilities back)."""
    outputs = {
        name: (torch.from_numpy(np.log(np.clip(p, 1e-12, 1.0))), torch.from_numpy(labels[name]))
        for name, p in probabilities.items()
    }
    return select_operating_point(outputs, id2label, OperatingPointArguments())[1]


def _metrics(
    args: FeatureArguments,
    data_args: DataArguments,
    run_dir: Path,
    report: SplitReport,
    fit: FitResult,
    splits: dict[str, dict[str, Any]],
    info: dict[str, Any],
    device: torch.device,
    backbone_parameters: int,
    eval_seconds: float,
    operating_point: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`hf_spam.run_folder.metrics_record` of this run; training time = feature extraction + fit."""
    lr_parameters = fit.num_parameters()
    return metrics_record(
        recipe="frozen_features",
        run_dir=run_dir,
        model=args.model if args.method == "embeddings" else args.method,
        implementation=f"frozen_features:{args.method}",
        dataset=data_args.dataset,
        splits=splits,
        split_report=report,
        seconds={"training": info["extraction_seconds"] + fit.seconds, "evaluation": eval_seconds},
        examples=splits["train"]["n"],
        best={"metric": "val_accuracy", "value": max(fit.val_accuracy_by_C.values()), "step": None},
        details={
            "fit_seconds": fit.seconds,
            **info,
            "best_C": fit.best_C,
            "val_accuracy_by_C": fit.val_accuracy_by_C,
            "refit_on": "train",
        },
        parameters={"trainable": lr_parameters, "total": backbone_parameters + lr_parameters},
        device=device,
        operating_point=operating_point,
    )
