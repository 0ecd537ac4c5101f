"""Models: our GPT-2 (:mod:`.gpt2`), the classifier on it, building any classifier a recipe asks for,
which parts train (:mod:`.trainable`), peft adapters (:mod:`.adapters`) and loading a saved run
(:func:`load_classifier`)."""

from .arguments import ModelArguments
from .build import build_classifier, tokenizer_for
from .classifier import GPT2Classifier
from .gpt2 import GPT2, GPT2Config
from .load import load_classifier
from .trainable import TRAINABLE, model_parts, parameter_counts, set_trainable

__all__ = [
    "GPT2",
    "TRAINABLE",
    "GPT2Classifier",
    "GPT2Config",
    "ModelArguments",
    "build_classifier",
    "load_classifier",
    "model_parts",
    "parameter_counts",
    "set_trainable",
    "tokenizer_for",
]
