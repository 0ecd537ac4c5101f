"""Serving a trained run: :class:`Predictor` (labels at the run's operating point, long texts, batches sorted
under a token budget, adapters merged in memory, int8, onnxruntime), the ONNX export (:mod:`.onnx_export`),
the accuracy of a serving variant on the run's test split (:mod:`.accuracy`), and the gradio app
(:mod:`.app`, the only module that imports gradio: ``pip install -e ".[app]"``)."""

from .arguments import (
    BACKENDS,
    DEFAULT_LONG_TEXT,
    DEFAULT_MAX_BATCH_TOKENS,
    DTYPES,
    LONG_TEXT_MODES,
    QUANTIZE_CHOICES,
    LongText,
    ServingArguments,
)
from .predict import Predictor, TextScorer

__all__ = [
    "BACKENDS",
    "DEFAULT_LONG_TEXT",
    "DEFAULT_MAX_BATCH_TOKENS",
    "DTYPES",
    "LONG_TEXT_MODES",
    "QUANTIZE_CHOICES",
    "LongText",
    "Predictor",
    "ServingArguments",
    "TextScorer",
]
