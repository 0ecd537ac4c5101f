"""The operating point of a classifier, chosen on validation: decision threshold, temperature, class weights.

A binary classifier is used at a probability threshold, not at argmax: the threshold that maximises F1 on
the validation split, or the one that meets a target precision or recall (``--threshold_for
precision@0.99``). ``--calibrate temperature`` first fits temperature scaling (Guo et al., 2017: one
scalar ``T``, probabilities ``softmax(logits / T)``) on the validation logits, and the threshold is then
chosen on the calibrated probabilities. The run folder keeps both in ``operating_point.json``; our
:class:`~hf_spam.serving.Predictor` (``recipes/predict.py``, the app) applies them, while
``transformers.pipeline`` knows neither (it gives uncalibrated argmax predictions).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn import metrics as sk

from ..run_folder import OPERATING_POINT_FILE
from .calibration import ECE_BINNING, calibration_metrics, fit_temperature

logger = logging.getLogger(__name__)

_TARGET = re.compile(r"^(precision|recall)@(0?\.\d+|1(\.0*)?)$")


@dataclass
class OperatingPointArguments:
    """How the run picks its operating point on validation, and how the loss weighs the classes."""

    threshold_for: str = field(
        default="f1",
        metadata={
            "help": "binary tasks: the validation threshold that maximises f1, or the one that meets a "
            "target: precision@0.99 (most recall at that precision) or recall@0.95 (most precision)"
        },
    )
    calibrate: Literal["none", "temperature"] = field(
        default="none",
        metadata={
            "help": "temperature: fit temperature scaling on the validation logits (saved with the run)"
        },
    )
    class_weights: Literal["none", "balanced"] = field(
        default="none",
        metadata={
            "help": "balanced: weigh the training loss per class by n_samples / (n_classes * count) "
            "(scikit-learn's formula) on the training split"
        },
    )

    def __post_init__(self) -> None:
        parse_target(self.threshold_for)


def parse_target(threshold_for: str) -> tuple[str, float | None]:
    """``"f1"`` -> ``("f1", None)``; ``"precision@0.99"`` -> ``("precision", 0.99)``; else a ValueError."""
    if threshold_for == "f1":
        return "f1", None
    match = _TARGET.match(threshold_for)
    if not match or not 0 < float(match.group(2)) <= 1:
        raise ValueError(
            f"--threshold_for {threshold_for!r}: use f1, precision@P or recall@R with 0 < P, R <= 1 "
            "(e.g. precision@0.99)"
        )
    return match.group(1), float(match.group(2))


def choose_threshold(positive: np.ndarray, labels: np.ndarray, threshold_for: str = "f1") -> dict[str, Any]:
    """The threshold on ``positive`` (probability of class 1) that ``threshold_for`` asks for.

    Predictions are ``positive >= threshold``; the candidates are the distinct scores (every distinct
    decision). ``f1``: the highest F1 (ties: the highest threshold). ``precision@P``: the most recall among
    thresholds with precision >= P. ``recall@R``: the most precision among thresholds with recall >= R.
    Returns ``threshold``, the validation ``precision``/``recall``/``f1`` there, and ``met`` (False when
    no threshold meets the target: then the one closest to it, with a warning).
    """
    labels = np.asarray(labels).astype(bool)
    precision, recall, thresholds = sk.precision_recall_curve(labels, positive)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    kind, target = parse_target(threshold_for)
    met = True
    if kind == "f1":
        best = np.flatnonzero(f1 == f1.max())[-1]
    else:
        achieved, other = (precision, recall) if kind == "precision" else (recall, precision)
        ok = np.flatnonzero(achieved >= target - 1e-12)
        if ok.size:
            best = ok[np.lexsort((thresholds[ok], other[ok]))[-1]]  # most of the other, then highest
        else:
            met, best = False, int(np.argmax(achieved))
            logger.warning(
                "no validation threshold reaches %s %.4f (best %.4f): using the closest", kind, target,
                achieved[best],
            )  # fmt: skip
    return {
        "threshold": float(thresholds[best]),
        "precision": float(precision[best]),
        "recall": float(recall[best]),
        "f1": float(f1[best]),
        "met": met,
    }


def threshold_metrics(positive: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 (class 1) and the confusion matrix of ``positive >= threshold``."""
    predictions = (np.asarray(positive) >= threshold).astype(int)
    labels = np.asarray(labels)
    common = {"zero_division": 0.0}
    return {
        "threshold": float(threshold),
        "accuracy": float(sk.accuracy_score(labels, predictions)),
        "precision": float(sk.precision_score(labels, predictions, **common)),
        "recall": float(sk.recall_score(labels, predictions, **common)),
        "f1": float(sk.f1_score(labels, predictions, **common)),
        "confusion_matrix": sk.confusion_matrix(labels, predictions, labels=[0, 1]).tolist(),
    }


def balanced_class_weights(labels: np.ndarray, num_labels: int) -> list[float]:
    """scikit-learn's ``balanced`` weights, ``n_samples / (n_classes * count)``; no class may be absent."""
    counts = np.bincount(np.asarray(labels), minlength=num_labels)
    if (counts == 0).any():
        raise ValueError(
            f"--class_weights balanced: class(es) {np.flatnonzero(counts == 0).tolist()} have no training row"
        )
    return (len(labels) / (num_labels * counts)).tolist()


@dataclass
class OperatingPoint:
    """What ``operating_point.json`` holds: temperature, threshold (binary tasks) and how they were chosen."""

    temperature: float = 1.0
    threshold: float | None = None  # on the probability of class ``positive_label``; None: argmax
    positive_label: str | None = None
    threshold_for: str | None = None
    calibrate: str = "none"
    chosen_on: str = "validation"

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``operating_point.json`` in ``directory``."""
        path = Path(directory) / OPERATING_POINT_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike | None) -> OperatingPoint:
        """Read an ``operating_point.json`` file; ``None`` gives the default (T = 1, argmax)."""
        if path is None:
            return cls()
        values = json.loads(Path(path).read_text())
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


def select_operating_point(
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]],
    id2label: dict[int, str],
    args: OperatingPointArguments,
) -> tuple[OperatingPoint, dict[str, Any]]:
    """Fit the temperature and pick the threshold on ``outputs["validation"]`` (logits, labels); report
    every split at 0.5 (argmax) and at the chosen threshold, with calibration before/after. Returns the
    operating point to save and the ``operating_point`` record of metrics.json."""
    val_logits, val_labels = outputs["validation"]
    temperature = fit_temperature(val_logits, val_labels) if args.calibrate == "temperature" else 1.0
    point = OperatingPoint(temperature=temperature, calibrate=args.calibrate)
    record: dict[str, Any] = {
        "temperature": temperature,
        "calibrate": args.calibrate,
        "ece_binning": ECE_BINNING,
    }
    calibrated = {
        name: torch.softmax(logits.double() / temperature, -1).numpy()
        for name, (logits, _) in outputs.items()
    }
    record["calibration"] = {
        name: {
            "before": calibration_metrics(torch.softmax(logits.double(), -1).numpy(), labels.numpy()),
            "after": calibration_metrics(calibrated[name], labels.numpy()),
        }
        for name, (logits, labels) in outputs.items()
    }
    if len(id2label) != 2:
        record["threshold"] = None
        logger.info("%d classes: predictions stay argmax (thresholds are for binary tasks)", len(id2label))
        return point, record
    choice = choose_threshold(calibrated["validation"][:, 1], val_labels.numpy(), args.threshold_for)
    point.threshold, point.positive_label, point.threshold_for = (
        choice["threshold"],
        id2label[1],
        args.threshold_for,
    )
    record |= {
        "threshold": choice["threshold"],
        "threshold_for": args.threshold_for,
        "target_met": choice["met"],
    }
    record["positive_label"] = id2label[1]
    record["at_0.5"] = {
        n: threshold_metrics(p[:, 1], outputs[n][1].numpy(), 0.5) for n, p in calibrated.items()
    }
    record["at_threshold"] = {
        n: threshold_metrics(p[:, 1], outputs[n][1].numpy(), choice["threshold"])
        for n, p in calibrated.items()
    }
    logger.info(
        "operating point (%s, on validation): threshold %.4f, temperature %.3f; test F1 %.4f at 0.5, "
        "%.4f there",
        args.threshold_for, choice["threshold"], temperature, record["at_0.5"]["test"]["f1"],
        record["at_threshold"]["test"]["f1"],
    )  # fmt: skip
    return point, record
