"""Serving a trained run: :class:`Predictor` (labels at the run's operating point, long texts, batches) and
the gradio app (:mod:`.app`, the only module that imports gradio: ``pip install -e ".[app]"``)."""

from .predict import DEFAULT_LONG_TEXT, LONG_TEXT_MODES, LongText, Predictor

__all__ = ["DEFAULT_LONG_TEXT", "LONG_TEXT_MODES", "LongText", "Predictor"]
