"""Contextual calibration (Zhao et al., 2021, "Calibrate before use"): a prompt's bias towards some label
words, measured on content-free inputs, divided out.

With ``p`` the label probabilities of a query (its label-word scores normalised over the classes) and
``p_cf`` the mean of those of the content-free inputs (:data:`CONTENT_FREE`: "N/A", "", "[MASK]") in the
same prompt, the calibrated probabilities are ``W p`` renormalised, ``W = diag(p_cf)^-1``; in logs,
``log_softmax(log p - log p_cf)``. ``--calibrate auto`` keeps it when it raises the validation accuracy
(ties: the lower validation cross-entropy).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

CONTENT_FREE = ("N/A", "", "[MASK]")


def label_log_probs(scores: torch.Tensor) -> torch.Tensor:
    """Summed label-word log-probabilities ``(n, C)`` normalised over the classes: ``log p``."""
    return torch.log_softmax(scores.double(), dim=-1)


def content_free_prior(scores: torch.Tensor) -> torch.Tensor:
    """``p_cf`` ``(C,)``: the mean over content-free inputs of their label probabilities (``scores``
    ``(m, C)``, the content-free inputs' summed label-word log-probabilities)."""
    return torch.softmax(scores.double(), dim=-1).mean(0)


def content_free_prior_rows(scores: torch.Tensor) -> torch.Tensor:
    """``p_cf`` ``(n, C)``, one per prompt: ``scores`` ``(n, m, C)`` are the ``m`` content-free inputs'
    summed label-word log-probabilities in each of ``n`` prompts."""
    return torch.softmax(scores.double(), dim=-1).mean(1)


def calibrate(log_probs: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``log_softmax(log p - log p_cf)``; ``prior`` is ``(C,)`` (one prompt) or ``(n, C)`` (one per row)."""
    return torch.log_softmax(log_probs.double() - prior.double().log(), dim=-1)


def choose_calibration(
    mode: str, raw: torch.Tensor, calibrated: torch.Tensor | None, labels: torch.Tensor
) -> tuple[bool, dict[str, Any]]:
    """Whether to calibrate (``mode`` on/off, or auto: the better validation accuracy, then the lower
    cross-entropy), with the validation figures of both that decided it."""
    record: dict[str, Any] = {"mode": mode}
    if calibrated is None:
        return False, record | {"applied": False}
    figures = {}
    for name, logits in (("raw", raw), ("calibrated", calibrated)):
        figures[name] = {
            "accuracy": float((logits.argmax(-1) == labels).double().mean()),
            "cross_entropy": float(F.cross_entropy(logits.double(), labels)),
        }
    better = (figures["calibrated"]["accuracy"], -figures["calibrated"]["cross_entropy"]) > (
        figures["raw"]["accuracy"],
        -figures["raw"]["cross_entropy"],
    )
    applied = mode == "on" or (mode == "auto" and better)
    return applied, record | {"applied": applied, "validation": figures}
