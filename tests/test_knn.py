"""Nearest neighbours (``frozen_features.py --method knn``): the vote is the true nearest neighbours' (by hand
on tiny embeddings), k is chosen on validation, and a saved kNN run serves through the Predictor and the app
with the predictions it reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import recipe

from hf_spam.arguments import DataArguments
from hf_spam.data import load_splits
from hf_spam.frozen_features.knn import KnnIndex, between_vote_shares, fit_knn
from hf_spam.run_folder import KNN_FILE, KNN_INDEX_FILE, OPERATING_POINT_FILE, PREDICTIONS_FILE
from hf_spam.serving.app import build_app, classify
from hf_spam.serving.predict import Predictor
from hf_spam.study.results import read_predictions

# six training points on the plane, at angles 0, 10, 20, 90, 100, 180 degrees (lengths differ: cosine
# ignores them); classes 0, 0, 1, 1, 1, 0
ANGLES = np.radians([0, 10, 20, 90, 100, 180])
LENGTHS = np.array([1.0, 3.0, 0.5, 2.0, 1.0, 4.0])
TRAIN = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1) * LENGTHS[:, None]
LABELS = [0, 0, 1, 1, 1, 0]


def by_hand(query: np.ndarray, k: int) -> list[int]:
    """The k training rows of largest cosine similarity to ``query``, computed one by one."""
    cosine = [float(query @ x / (np.linalg.norm(query) * np.linalg.norm(x))) for x in TRAIN]
    return sorted(range(len(TRAIN)), key=lambda i: -cosine[i])[:k]


def test_the_vote_is_the_true_nearest_neighbours_by_hand():
    index = KnnIndex.build(TRAIN, LABELS, num_labels=2)
    queries = np.array([[np.cos(np.radians(14)), np.sin(np.radians(14))],  # nearest 10, 20, 0 degrees
                        [0.1, 5.0],  # ~89 degrees: 90, 100, then 20
                        [-2.0, 0.1]])  # ~177 degrees: 180, then 100, 90  # fmt: skip
    neighbours, similarities = index.neighbours(queries, k=3)
    assert neighbours.tolist() == [by_hand(q, 3) for q in queries] == [[1, 2, 0], [3, 4, 2], [5, 4, 3]]
    for row, found, query in zip(neighbours, similarities, queries, strict=True):  # the cosines, descending
        cosines = [query @ TRAIN[i] / np.linalg.norm(query) / np.linalg.norm(TRAIN[i]) for i in row]
        np.testing.assert_allclose(found, cosines, rtol=1e-6)
    votes = index.votes(neighbours)
    assert votes.tolist() == [[2, 1], [0, 3], [1, 2]]  # labels of [1,2,0] = 0,1,0; [3,4,2] = 1,1,1; ...
    probabilities = index.predict_proba(queries, k=3)
    np.testing.assert_allclose(probabilities, (votes + 1) / (3 + 2))  # add-one smoothed vote shares
    assert probabilities.argmax(axis=1).tolist() == [0, 1, 1]
    assert index.predict_proba(queries, k=1).argmax(axis=1).tolist() == [0, 1, 0]  # 10, 90, 180 degrees
    # neighbours tied on similarity come in training order
    tied = KnnIndex.build(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), [1, 0, 0], 2)
    assert tied.neighbours(np.array([[1.0, 0.0]]), k=2)[0].tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="k = 7: choose 1 to 6"):
        index.neighbours(queries, k=7)


def test_k_is_chosen_on_validation_ties_to_the_smaller_k():
    # at 16 degrees, class 0: k=1 -> 20 (class 1, wrong); k=3 -> 20, 10, 0 (right); k=5 -> + 90, 100 (wrong)
    # at ~95 degrees, class 1: k=1 -> 90; k=3 -> 90, 100, 20; k=5 -> + 10, 180: right for every k
    val = np.array([[np.cos(np.radians(16)), np.sin(np.radians(16))], [np.cos(np.radians(95)), 1.0]])
    fit = fit_knn(TRAIN, LABELS, val, [0, 1], num_labels=2, k_grid=[5, 1, 3, 9])
    assert fit.val_accuracy_by_k == {"1": 0.5, "3": 1.0, "5": 0.5}  # 9 > the 6 training rows: left out
    assert fit.best_k == fit.model.k == 3 and fit.num_parameters() == 0
    tie = fit_knn(TRAIN, LABELS, val[1:], [1], num_labels=2, k_grid=[5, 3, 1])
    assert tie.val_accuracy_by_k == {"1": 1.0, "3": 1.0, "5": 1.0} and tie.best_k == 1  # ties: the smaller k
    # a threshold on vote shares moves half a share down: the same decision for every possible share
    threshold = between_vote_shares(4 / 5, k=3, num_labels=2)
    shares = [(v + 1) / 5 for v in range(4)]
    assert threshold == pytest.approx(0.7)
    assert [s >= threshold for s in shares] == [s >= 4 / 5 for s in shares]


@pytest.fixture(scope="module")
def knn_run(tiny_bert_dir, sms_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("knn")
    metrics = recipe("frozen_features").main([
        "--method", "knn", "--model", str(tiny_bert_dir), "--implementation", "transformers",
        "--pooling", "mean", "--data_source", str(sms_file), "--max_train_samples", "200",
        "--max_eval_samples", "40", "--output_dir", str(out), "--run_name", "knn",
    ])  # fmt: skip
    return metrics, out / "knn"


def test_a_knn_run_records_its_index_and_k(knn_run):
    metrics, run = knn_run
    details = metrics["training"]["details"]
    assert metrics["implementation"] == "frozen_features:knn" and metrics["parameters"]["trainable"] == 0
    assert details["best_k"] in (1, 3, 5, 7, 9, 15, 21, 31) and details["index_size"] == 200
    assert metrics["splits"]["validation"]["accuracy"] == pytest.approx(
        max(details["val_accuracy_by_k"].values())
    )
    record = json.loads((run / KNN_FILE).read_text())
    assert record["k"] == details["best_k"] and record["pooling"] == "mean"
    assert record["id2label"] == {"0": "ham", "1": "spam"}
    assert (run / KNN_INDEX_FILE).is_file() and (run / OPERATING_POINT_FILE).is_file()


def test_a_knn_run_serves_the_predictions_it_reported(knn_run, sms_file):
    metrics, run = knn_run
    test = load_splits(DataArguments(data_source=str(sms_file), max_eval_samples=40), seed=123)[0]["test"]
    predictor = Predictor(run, device="cpu")
    probabilities = predictor.probabilities(test["text"])
    saved = np.loadtxt(run / PREDICTIONS_FILE, delimiter=",", skiprows=1, usecols=(3, 4))
    np.testing.assert_allclose(probabilities.numpy(), saved, atol=1e-5)  # the same embeddings, the same votes
    labels, _ = read_predictions(run / PREDICTIONS_FILE)
    decided = [predictor.id2label[predictor.decide(row)] for row in probabilities.tolist()]
    at_threshold = metrics["operating_point"]["at_threshold"]["test"]["accuracy"]
    assert np.mean([d == ["ham", "spam"][y] for d, y in zip(decided, labels, strict=True)]) == at_threshold
    results = predictor(["free prize, call now", "ok see you"])
    assert results[0]["chunks"] == 1 and results[0]["tokens"] > 0 and results[0]["threshold"] is not None
    label, shares, how = classify(predictor, "claim your free prize now", None)  # the app's classify
    assert label in ("ham", "spam") and set(shares) == {"ham", "spam"} and "tokens" in how
    assert build_app(run, predictor=predictor) is not None
