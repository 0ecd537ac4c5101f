"""Frozen features + scikit-learn: embeddings of a frozen backbone (:mod:`.backbone`, :mod:`.extract`),
TF-IDF / bag-of-words n-grams, and logistic regression fitted on them (:mod:`.fit`); :mod:`.run` is the
recipe's run."""

from .arguments import FeatureArguments
from .run import run_frozen_features

__all__ = ["FeatureArguments", "run_frozen_features"]
