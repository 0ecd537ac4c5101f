"""Scoring a classifier: metrics through ``evaluate`` (:mod:`.metrics`), calibration (:mod:`.calibration`)
and the operating point chosen on validation (:mod:`.operating_point`)."""

from .calibration import calibration_metrics, fit_temperature
from .metrics import BEST_METRICS, METRIC_NAMES, classification_metrics, metrics_from_logits
from .operating_point import OperatingPoint, OperatingPointArguments, select_operating_point

__all__ = [
    "BEST_METRICS",
    "METRIC_NAMES",
    "OperatingPoint",
    "OperatingPointArguments",
    "calibration_metrics",
    "classification_metrics",
    "fit_temperature",
    "metrics_from_logits",
    "select_operating_point",
]
