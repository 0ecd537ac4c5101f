"""Calibration: temperature scaling, and how well probabilities match outcomes.

Temperature scaling (Guo et al., 2017): one scalar ``T``, probabilities ``softmax(logits / T)``, fitted on
the validation logits. Calibration metrics: the Brier score (binary: mean squared error of the
positive-class probability, as scikit-learn's ``brier_score_loss``; more classes: the mean over examples
of the summed squared error of every class probability) and the expected calibration error, ECE, over
:data:`ECE_BINS` equal-width bins of the top-class probability (confidence):
``sum_b |B_b|/n * |accuracy(B_b) - confidence(B_b)|``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import metrics as sk

ECE_BINS = 15
ECE_BINNING = f"{ECE_BINS} equal-width bins of the top-class probability over [0, 1]"


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (LBFGS on ``log T``)."""
    logits, labels = logits.detach().double(), labels.detach().long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width bins of the top-class probability (see the module docstring)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == np.asarray(labels)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (b/B, (b+1)/B]
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Brier score (see the module docstring): binary as scikit-learn's, else the multi-class form."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    if probabilities.shape[1] == 2:
        return float(sk.brier_score_loss(labels, probabilities[:, 1], pos_label=1))
    onehot = np.eye(probabilities.shape[1])[labels]
    return float(((probabilities - onehot) ** 2).sum(1).mean())


def calibration_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``pr_auc`` (average precision of class 1; macro one-vs-rest with more classes), ``brier``, ``ece``."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    k = probabilities.shape[1]
    if len(set(labels.tolist())) < 2:
        pr_auc = float("nan")
    elif k == 2:
        pr_auc = sk.average_precision_score(labels == 1, probabilities[:, 1])
    else:
        pr_auc = sk.average_precision_score(np.eye(k)[labels], probabilities, average="macro")
    return {
        "pr_auc": float(pr_auc),
        "brier": brier_score(probabilities, labels),
        "ece": expected_calibration_error(probabilities, labels),
    }
