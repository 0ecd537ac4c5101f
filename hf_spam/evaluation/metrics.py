"""Classification metrics through `evaluate`, from one module shipped in the package and loaded by path
(no hub): :func:`classification_metrics` of probabilities, :func:`metrics_from_logits` with the loss."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import evaluate
import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent / "evaluate_modules"
METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix")
# validation metrics a run computes that can pick the best checkpoint (--metric_for_best)
BEST_METRICS = ("loss", *(name for name in METRIC_NAMES if name != "confusion_matrix"))


@functools.cache
def load_metric() -> evaluate.EvaluationModule:
    """The ``classification`` ``evaluate`` module (every metric of :data:`METRIC_NAMES`), loaded offline."""
    return evaluate.load(str(METRICS_DIR / "classification"))


def classification_metrics(probabilities: np.ndarray, references: np.ndarray) -> dict[str, Any]:
    """``n`` and the metrics of :data:`METRIC_NAMES` for class probabilities ``(n, num_labels)``.

    With two classes, precision/recall/F1 are those of class 1 (spam, positive) and ROC AUC uses its
    probability; with more, they are macro averages and ROC AUC is one-vs-rest.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    references = np.asarray(references, dtype=np.int64)
    results: dict[str, Any] = {"n": len(references)}
    return results | load_metric().compute(prediction_scores=probabilities, references=references)


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """The (unweighted) cross-entropy ``loss`` and :func:`classification_metrics` of ``softmax(logits)``."""
    results = {"loss": F.cross_entropy(logits, labels).item()}
    results |= classification_metrics(torch.softmax(logits, -1).numpy(), labels.numpy())
    return results
