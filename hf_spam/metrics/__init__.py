"""Classification metrics through `evaluate`, from modules shipped here and loaded by path (no hub)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import evaluate
import numpy as np

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix")


@functools.cache
def load_metric(name: str, config_name: str | None = None) -> evaluate.EvaluationModule:
    """One of :data:`METRIC_NAMES` as an ``evaluate`` module, loaded from this package (works offline)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose one of {METRIC_NAMES}")
    return evaluate.load(str(METRICS_DIR / name), config_name)


def classification_metrics(probabilities: np.ndarray, references: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC and the confusion matrix for class probabilities.

    ``probabilities`` is ``(n, num_labels)``. With two classes, precision/recall/F1 are those of class 1
    (spam, positive) and ROC AUC uses its probability; with more, they are macro averages and ROC AUC is
    one-vs-rest.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    references = np.asarray(references, dtype=np.int64)
    num_labels = probabilities.shape[1]
    predictions = probabilities.argmax(axis=1)
    binary = num_labels == 2
    average = {"average": "binary", "pos_label": 1} if binary else {"average": "macro"}
    labels = list(range(num_labels))
    results: dict[str, Any] = {"n": len(references)}
    results |= load_metric("accuracy").compute(predictions=predictions, references=references)
    for name in ("precision", "recall", "f1"):
        results |= load_metric(name).compute(
            predictions=predictions, references=references, labels=labels, **average
        )
    if binary:
        results |= load_metric("roc_auc").compute(
            prediction_scores=probabilities[:, 1], references=references
        )
    else:
        results |= load_metric("roc_auc", "multiclass").compute(
            prediction_scores=probabilities, references=references
        )
    results |= load_metric("confusion_matrix").compute(
        predictions=predictions, references=references, labels=labels
    )
    return results
