"""The frozen-features run behind ``recipes/frozen_features.py``: features (frozen embeddings, TF-IDF or bag
of words) + logistic regression with ``C`` chosen on validation, or frozen embeddings + a nearest-neighbour
vote (:mod:`.knn`), written to a run folder in the layout of every recipe
(:func:`hf_spam.run_folder.metrics_record`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from ..data import (
    PAIR_COLUMN,
    DataArguments,
    SplitReport,
    dataset_label,
    join_pairs,
    load_splits,
    pair_record,
)
from ..evaluation.operating_point import OperatingPoint, OperatingPointArguments, select_operating_point
from ..run_folder import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    claim_run_dir,
    metrics_record,
    sample_examples,
    write_args,
    write_examples,
    write_json,
    write_predictions,
)
from .arguments import EMBEDDING_METHODS, FeatureArguments
from .extract import embedding_inputs
from .fit import FitResult, embedding_pipeline, fit_text, fit_with_validation, probability_metrics
from .knn import KnnFit, between_vote_shares, fit_knn, save_knn_run

logger = logging.getLogger(__name__)


def run_frozen_features(args: FeatureArguments, data_args: DataArguments) -> dict[str, Any]:
    """Features (frozen embeddings, TF-IDF or bag of words) + logistic regression with ``C`` chosen on
    validation, or frozen embeddings + a k-nearest-neighbour vote with ``k`` chosen on validation; writes the
    run folder (metrics.json, args.json, test predictions, operating point, examples; a kNN run also its
    index) and returns the metrics."""
    name = f"{'knn' if args.method == 'knn' else 'frozen'}-{Path(args.model).name}"
    name = name if args.method in EMBEDDING_METHODS else args.method
    run_dir = Path(args.output_dir) / (
        args.run_name or f"{name}-{dataset_label(data_args.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    claim_run_dir(run_dir, args.overwrite_output_dir, resumable=False)  # before any data or model loads
    splits, report = load_splits(data_args, args.seed)
    id2label = dict(enumerate(splits["train"].features["label"].names))
    fit: FitResult | KnnFit
    if args.method in EMBEDDING_METHODS:
        inputs, info, backbone = embedding_inputs(args, data_args, splits)
        device, backbone_parameters = backbone.device, backbone.num_parameters()
        if args.method == "knn":
            fit = fit_knn(*inputs["train"], *inputs["validation"], len(id2label), args.k_grid)
        else:
            pipeline = embedding_pipeline(args.max_iter, args.seed)
            fit = fit_with_validation(pipeline, *inputs["train"], *inputs["validation"], C_grid=args.C_grid)
    else:
        inputs = {n: (joined_texts(part), np.asarray(part["label"][:])) for n, part in splits.items()}
        info, device, backbone_parameters = {"extraction_seconds": 0.0}, torch.device("cpu"), 0
        fit, info["analyzer"], info["val_accuracy_by_analyzer"] = fit_text(args, inputs)
        info["feature_dim"] = len(fit.model[0].vocabulary_)
    info["text_pairs"] = pair_record(
        data_args.text_pair_column, backbone.tokenizer if args.method in EMBEDDING_METHODS else None
    )
    start = time.perf_counter()
    probabilities = {n: fit.model.predict_proba(x) for n, (x, _) in inputs.items()}  # once per split
    labels = {n: y for n, (_, y) in inputs.items()}
    results = {n: probability_metrics(p, labels[n], fit.model.classes_) for n, p in probabilities.items()}
    point, point_record = operating_point_of(probabilities, labels, id2label)
    if isinstance(fit, KnnFit) and point.threshold is not None:
        point.threshold = point_record["threshold"] = between_vote_shares(
            point.threshold, fit.best_k, len(id2label)
        )
    eval_seconds = time.perf_counter() - start
    write_predictions(run_dir / PREDICTIONS_FILE, probabilities["test"], labels["test"])
    point.save(run_dir)
    write_examples(run_dir, sample_examples(splits["test"], id2label, seed=args.seed))
    if isinstance(fit, KnnFit):
        save_knn_run(run_dir, fit, args, info, id2label, data_args.text_pair_column)
    metrics = _metrics(
        args, data_args, run_dir, report, fit, results, info, device, backbone_parameters, eval_seconds,
        point_record,
    )  # fmt: skip
    write_args(run_dir, args, data_args)
    write_json(run_dir / METRICS_FILE, metrics)
    logger.info("run folder: %s; test accuracy %.4f", run_dir, results["test"]["accuracy"])
    return metrics


def joined_texts(part: Dataset) -> list[str]:
    """A split's texts as TF-IDF reads them: sentence pairs joined (:func:`~hf_spam.data.join_pairs`)."""
    pairs = part[PAIR_COLUMN][:] if PAIR_COLUMN in part.column_names else None
    return join_pairs(part["text"][:], pairs)


def operating_point_of(
    probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray], id2label: dict[int, str]
) -> tuple[OperatingPoint, dict[str, Any]]:
    """The operating point (threshold for the best validation F1, no calibration) and its metrics.json
    record, from the log of each split's probabilities (softmax of them gives the probabilities back)."""
    outputs = {
        name: (torch.from_numpy(np.log(np.clip(p, 1e-12, 1.0))), torch.from_numpy(labels[name]))
        for name, p in probabilities.items()
    }
    return select_operating_point(outputs, id2label, OperatingPointArguments())


def _metrics(
    args: FeatureArguments,
    data_args: DataArguments,
    run_dir: Path,
    report: SplitReport,
    fit: FitResult | KnnFit,
    splits: dict[str, dict[str, Any]],
    info: dict[str, Any],
    device: torch.device,
    backbone_parameters: int,
    eval_seconds: float,
    operating_point: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`hf_spam.run_folder.metrics_record` of this run; training time = feature extraction + fit (a
    kNN run's fit: building the index and choosing ``k``)."""
    lr_parameters = fit.num_parameters()
    return metrics_record(
        recipe="frozen_features",
        run_dir=run_dir,
        model=args.model if args.method in EMBEDDING_METHODS else args.method,
        implementation=f"frozen_features:{args.method}",
        dataset=data_args.dataset,
        splits=splits,
        split_report=report,
        seconds={"training": info["extraction_seconds"] + fit.seconds, "evaluation": eval_seconds},
        examples=splits["train"]["n"],
        best={"metric": "val_accuracy", "value": fit.best_value, "step": None},
        details={"fit_seconds": fit.seconds, **info, **fit.details()},
        parameters={"trainable": lr_parameters, "total": backbone_parameters + lr_parameters},
        device=device,
        operating_point=operating_point,
    )
