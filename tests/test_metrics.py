"""Classification metrics: one `evaluate` module loaded by path, checked against scikit-learn."""

from __future__ import annotations

import math

import evaluate
import numpy as np
import pytest
from sklearn import metrics as sk

from hf_spam.evaluation.metrics import METRIC_NAMES, METRICS_DIR, classification_metrics, load_metric


def probabilities(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    references = np.arange(n) % (k + 1) % k  # every class present, class 0 twice as often
    rng.shuffle(references)
    scores = rng.dirichlet(np.ones(k), size=n)
    scores[np.arange(n), references] += rng.uniform(0, 0.6, n)  # better than chance, not perfect
    return scores / scores.sum(1, keepdims=True), references


def test_one_evaluate_module_computes_every_metric(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # loaded by path: no hub
    module = load_metric()
    assert isinstance(module, evaluate.Metric)
    assert [p.name for p in METRICS_DIR.iterdir() if p.is_dir() and not p.name.startswith("_")] == [
        "classification"
    ]
    scores, references = probabilities(30, 2, 0)
    assert list(module.compute(prediction_scores=scores, references=references)) == list(METRIC_NAMES)


def test_binary_metrics_match_sklearn():
    scores, references = probabilities(50, 2, 1)
    predictions = scores.argmax(1)
    got = classification_metrics(scores, references)
    assert list(got) == ["n", *METRIC_NAMES]
    assert got["n"] == 50
    assert got["accuracy"] == sk.accuracy_score(references, predictions)
    assert got["precision"] == sk.precision_score(references, predictions)  # class 1 (spam)
    assert got["recall"] == sk.recall_score(references, predictions)
    assert got["f1"] == sk.f1_score(references, predictions)
    assert got["roc_auc"] == sk.roc_auc_score(references, scores[:, 1])
    assert got["confusion_matrix"] == sk.confusion_matrix(references, predictions).tolist()


def test_multiclass_metrics_match_sklearn():
    scores, references = probabilities(60, 3, 2)
    predictions = scores.argmax(1)
    got = classification_metrics(scores, references)
    assert got["n"] == 60
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(references, predictions))
    for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        assert got[name] == pytest.approx(fn(references, predictions, average="macro")), name
        assert got[name] != pytest.approx(fn(references, predictions, average="micro")), name  # macro, really
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(references, scores, multi_class="ovr"))
    matrix = np.array(got["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 60
    assert matrix.tolist() == sk.confusion_matrix(references, predictions).tolist()
    assert 0.34 < got["accuracy"] < 1.0  # neither chance nor perfect: the checks above mean something


def test_a_class_missing_from_the_references_counts_every_declared_class():
    scores, references = probabilities(40, 3, 3)
    keep = references != 2  # class 2 is declared (a column of scores) but never a reference
    got = classification_metrics(scores[keep], references[keep])
    assert np.array(got["confusion_matrix"]).shape == (3, 3)
    predictions = scores[keep].argmax(1)
    expected = sk.f1_score(
        references[keep], predictions, average="macro", labels=[0, 1, 2], zero_division=0.0
    )
    assert got["f1"] == pytest.approx(expected)
    assert math.isnan(got["roc_auc"])  # one-vs-rest AUC is not defined for a class with no example
