"""scikit-learn classifiers on fixed inputs: logistic regression on frozen embeddings
(:mod:`hf_spam.features`), and the floor with no neural network at all, TF-IDF or bag-of-words n-grams +
logistic regression; and :func:`run_frozen_features`, the run behind ``recipes/frozen_features.py``, which
writes ``metrics.json`` in the layout of every recipe (:func:`hf_spam.outputs.metrics_record`).

The regularisation strength ``C`` is chosen on the validation split (``GridSearchCV`` over a
``PredefinedSplit``: fit on train, score on validation; ties go to the smaller ``C``), then the model is refit
on the training split alone with that ``C`` -- not on train + validation, so validation numbers stay those of
the model that is reported, as in the fine-tuning recipes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .args import DataArguments
from .data import SplitReport, dataset_label, load_splits
from .features import FeatureArguments, embedding_inputs
from .metrics import classification_metrics
from .operating_point import OperatingPointArguments, calibration_metrics, select_operating_point
from .outputs import PREDICTIONS_FILE, metrics_record, write_args, write_json, write_predictions

logger = logging.getLogger(__name__)

TextMethod = Literal["tfidf", "bow"]
Analyzer = Literal["word", "char"]
DEFAULT_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
NGRAM_RANGE = (1, 2)  # word unigrams and bigrams
CHAR_NGRAM_RANGE = (1, 5)  # character 1- to 5-grams


@dataclass
class FitResult:
    """The model refit on train with the chosen ``C``, and how every ``C`` did on validation."""

    model: Pipeline
    best_C: float
    val_accuracy_by_C: dict[str, float]
    seconds: float

    def num_parameters(self) -> int:
        """Coefficients plus intercepts of the logistic regression."""
        lr = self.model[-1]
        return int(lr.coef_.size + lr.intercept_.size)


def embedding_pipeline(max_iter: int = 1000, seed: int = 123) -> Pipeline:
    """``StandardScaler`` then ``LogisticRegression``: for dense feature vectors such as embeddings."""
    return Pipeline(
        [("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=max_iter, random_state=seed))]
    )


def text_pipeline(
    method: TextMethod, max_iter: int = 1000, seed: int = 123, analyzer: Analyzer = "word"
) -> Pipeline:
    """Raw text -> n-gram counts (``bow``) or sublinear TF-IDF (``tfidf``) -> ``LogisticRegression``.

    ``word``: unigrams and bigrams, lowercased; ``char``: character 1- to 5-grams, case kept (capitals and
    symbols say much about spam). Every term kept (``min_df=1``: the SMS training split is small).
    """
    if analyzer == "word":
        grams = {"ngram_range": NGRAM_RANGE}
    elif analyzer == "char":
        grams = {"analyzer": "char", "ngram_range": CHAR_NGRAM_RANGE, "lowercase": False}
    else:
        raise ValueError(f"unknown analyzer {analyzer!r}; choose word or char")
    if method == "tfidf":
        vectorizer = TfidfVectorizer(**grams, min_df=1, sublinear_tf=True)
    elif method == "bow":
        vectorizer = CountVectorizer(**grams, min_df=1)
    else:
        raise ValueError(f"unknown text method {method!r}; choose tfidf or bow")
    return Pipeline(
        [("vectorize", vectorizer), ("lr", LogisticRegression(max_iter=max_iter, random_state=seed))]
    )


def _concat(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray):
        return np.concatenate([a, b])
    return list(a) + list(b)


def fit_with_validation(
    pipeline: Pipeline,
    x_train: Any,
    y_train: Sequence[int] | np.ndarray,
    x_val: Any,
    y_val: Sequence[int] | np.ndarray,
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    blas_threads: int | None = 1,
) -> FitResult:
    """Pick the last step's ``C`` by validation accuracy (ties: the smaller ``C``), refit on train with it.

    ``x_*`` are what the pipeline takes: a 2-D array for :func:`embedding_pipeline`, a list of texts for
    :func:`text_pipeline`. ``blas_threads`` caps BLAS threads while fitting (None: no cap): L-BFGS works on
    vectors of one coefficient per feature, too short for threads to pay, and on a busy machine
    multi-threaded BLAS made a TF-IDF fit 70x slower (2.2 s instead of 0.03 s).
    """
    if not C_grid or min(C_grid) <= 0:
        raise ValueError(f"C_grid needs one or more positive values, got {list(C_grid)}")
    grid = sorted(set(float(c) for c in C_grid))  # GridSearchCV keeps the first best: the smallest C
    param = f"{pipeline.steps[-1][0]}__C"
    folds = PredefinedSplit(np.r_[np.full(len(y_train), -1), np.zeros(len(y_val))])  # -1: always train
    start = time.perf_counter()
    search = GridSearchCV(
        pipeline, {param: grid}, scoring="accuracy", cv=folds, refit=False, error_score="raise"
    )
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        search.fit(_concat(x_train, x_val), np.r_[np.asarray(y_train), np.asarray(y_val)])
        best_C = float(search.best_params_[param])
        model = clone(pipeline).set_params(**{param: best_C}).fit(x_train, y_train)
    scores = search.cv_results_["mean_test_score"]
    seconds = time.perf_counter() - start
    by_C = {f"{c:g}": float(s) for c, s in zip(grid, scores, strict=True)}
    logger.info("validation accuracy by C: %s; chosen C=%g (refit on train)", by_C, best_C)
    return FitResult(model, best_C, by_C, seconds)


def evaluate_classifier(model: Pipeline, x: Any, y: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """:func:`probability_metrics` of ``model.predict_proba(x)``."""
    return probability_metrics(model.predict_proba(x), y, model.classes_)


def probability_metrics(
    probabilities: np.ndarray, y: Sequence[int] | np.ndarray, classes: np.ndarray
) -> dict[str, Any]:
    """``classification_metrics`` of a fitted classifier's probabilities (columns: ``classes``), plus
    ``loss`` (the log loss) and the calibration metrics (``pr_auc``, ``brier``, ``ece``)."""
    y = np.asarray(y)
    if not np.array_equal(classes, np.arange(len(classes))):
        raise ValueError(f"labels must be 0..k-1 and all present in training, got classes {classes}")
    return (
        {"loss": float(log_loss(y, probabilities, labels=classes))}
        | classification_metrics(probabilities, y)
        | calibration_metrics(probabilities, y)
    )


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
    """:func:`hf_spam.outputs.metrics_record` of this run; training time = feature extraction + fit."""
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


def fit_text(
    args: FeatureArguments, inputs: dict[str, tuple[Any, np.ndarray]]
) -> tuple[FitResult, str, dict[str, float]]:
    """TF-IDF / bag-of-words + LR with ``C`` chosen on validation, for ``args.analyzer`` (``best``: word and
    char both, the better validation accuracy kept; ties go to word). Returns the fit, the analyzer kept
    and the best validation accuracy of each analyzer tried."""
    analyzers: list[Analyzer] = ["word", "char"] if args.analyzer == "best" else [args.analyzer]
    fits = {
        name: fit_with_validation(
            text_pipeline(args.method, args.max_iter, args.seed, name),
            *inputs["train"],
            *inputs["validation"],
            C_grid=args.C_grid,
        )
        for name in analyzers
    }
    by_analyzer = {name: max(fit.val_accuracy_by_C.values()) for name, fit in fits.items()}
    kept = max(analyzers, key=lambda name: (by_analyzer[name], name == "word"))
    if len(fits) > 1:
        logger.info("validation accuracy by analyzer: %s; kept %s", by_analyzer, kept)
        fits[kept].seconds = sum(fit.seconds for fit in fits.values())  # the time of the whole search
    return fits[kept], kept, by_analyzer


def run_frozen_features(args: FeatureArguments, data_args: DataArguments) -> dict[str, Any]:
    """Features (frozen embeddings, TF-IDF or bag of words) + logistic regression with ``C`` chosen on
    validation; writes ``metrics.json`` and ``args.json`` to the run folder and returns the metrics."""
    name = f"frozen-{Path(args.model).name}" if args.method == "embeddings" else args.method
    run_dir = Path(args.output_dir) / (
        args.run_name or f"{name}-{dataset_label(data_args.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
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
    write_json(run_dir / "metrics.json", metrics)
    logger.info("run folder: %s; test accuracy %.4f", run_dir, results["test"]["accuracy"])
    return metrics
