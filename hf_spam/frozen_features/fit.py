"""scikit-learn classifiers on fixed inputs: logistic regression on frozen embeddings (:mod:`.extract`),
and the floor with no neural network at all, TF-IDF or bag-of-words n-grams + logistic regression.

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
from typing import Any, Literal

import numpy as np
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..evaluation.calibration import calibration_metrics
from ..evaluation.metrics import classification_metrics
from .arguments import FeatureArguments

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

    @property
    def best_value(self) -> float:
        """The best validation accuracy."""
        return max(self.val_accuracy_by_C.values())

    def details(self) -> dict[str, Any]:
        """What metrics.json records of the fit."""
        return {"best_C": self.best_C, "val_accuracy_by_C": self.val_accuracy_by_C, "refit_on": "train"}


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
