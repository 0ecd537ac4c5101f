"""Predictions from a saved classifier (a run folder or a hub repo id): label and probabilities per text.

:class:`Predictor` applies the run's operating point (``operating_point.json``: the temperature and, for
two classes, the probability threshold chosen on validation), which ``transformers.pipeline`` does not
know: the pipeline gives argmax labels and uncalibrated probabilities. A text longer than the model's
context is never cut silently; ``long_text`` says what happens, and every result names the mode, the
number of tokens and of windows:

- ``truncate``: the first ``max_length`` tokens (as the pipeline does);
- ``head_tail``: the first quarter and the last three quarters of the budget (Sun et al., 2019, "How to
  fine-tune BERT for text classification?": head + tail beats either alone on IMDB);
- ``chunks`` (default): consecutive windows of ``max_length`` tokens, no overlap, each with the model's
  special tokens; the text's probabilities are the mean of the windows' probabilities, each window
  weighted by its number of tokens. A text that fits is one window: the same as ``truncate``.

The fast path: texts are tokenised in batches (the fast tokenizer), windows sorted by length and batched up
to ``max_batch_tokens`` padded tokens (:func:`~hf_spam.serving.batching.token_budget_batches`), results put
back in input order; an adapter that can merge is merged in memory; ``quantize="int8"``, ``dtype`` and
``backend="onnxruntime"`` as :mod:`hf_spam.serving.backends` says.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..data.pairs import encode
from ..data.tokenizer import load_tokenizer
from ..evaluation.operating_point import OperatingPoint
from ..hub.access import resolve_run
from ..in_context import load_in_context
from ..models.load import load_classifier
from ..run_folder import (
    ARGS_FILE,
    KNN_FILE,
    ONNX_DIR,
    ONNX_EXPORT_FILE,
    ONNX_MODEL,
    ONNX_QUANTIZED,
    OPERATING_POINT_FILE,
    SERVING_ACCURACY_FILE,
    read_json,
    run_file,
)
from .arguments import (
    DEFAULT_LONG_TEXT,
    DEFAULT_MAX_BATCH_TOKENS,
    LONG_TEXT_MODES,
    Backend,
    DType,
    LongText,
    Quantize,
    ServingArguments,
)
from .backends import OnnxBackend, TorchBackend, check_device, prepare_torch_model
from .batching import token_budget_batches

logger = logging.getLogger(__name__)
DEFAULT_PAIR_BATCH = 16  # sentence pairs per batch (they are read whole, not in windows)

__all__ = ["DEFAULT_LONG_TEXT", "LONG_TEXT_MODES", "LongText", "Predictor", "TextScorer", "context_length"]

TOKENIZE_CHUNK = 4096  # texts per call of the fast tokenizer


class TextScorer(Protocol):
    """A run kind that reads whole texts itself (in-context prompting, nearest neighbours): the Predictor
    applies the temperature, threshold and output format to its per-text logits."""

    id2label: dict[int, str]

    def logits(self, texts: list[str], text_pairs: list[str] | None = None) -> torch.Tensor:
        """Class logits ``(len(texts), num_labels)`` (log-probabilities are fine)."""
        ...

    def describe(self, texts: list[str], text_pairs: list[str] | None = None) -> list[dict[str, Any]]:
        """How each text was read: the ``long_text``, ``tokens``, ``chunks``, ``truncated`` of
        :meth:`Predictor.predict` (and what else the run kind says)."""
        ...


def load_scorer(directory: str | os.PathLike, device: torch.device) -> TextScorer | None:
    """The scorer of a run that holds no saved classifier -- an in-context run
    (:class:`~hf_spam.in_context.classifier.InContextClassifier`) or a nearest-neighbour index
    (:class:`~hf_spam.frozen_features.knn.KnnScorer`) -- or None."""
    in_context = load_in_context(directory, device)
    if in_context is not None:
        return in_context
    if run_file(directory, KNN_FILE) is not None:
        from ..frozen_features.knn import KnnScorer

        return KnnScorer.load(directory, device)
    return None


def text_pair_column(directory: str | os.PathLike) -> str | None:
    """The ``--text_pair_column`` the run was trained with (its ``args.json``), None for one text per row."""
    args = read_json(directory, ARGS_FILE) or {}
    return (args.get("DataArguments") or {}).get("text_pair_column")


def context_length(model: torch.nn.Module) -> int | None:
    """The number of positions the model can read (its config's), or ``None`` when it does not say."""
    config = getattr(model, "config", None)
    for name in ("context_length", "n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class Predictor:
    """``Predictor(run)(texts)`` -> ``[{"label", "probability", "probabilities", ...}, ...]``.

    ``directory``: a run folder (or any saved classifier folder), or a hub repo id (downloaded once, through
    the hub cache). ``threshold``/``temperature`` override the
    run's operating point (``threshold=0.5, temperature=1.0`` gives the pipeline's argmax predictions).
    ``max_length``: tokens per window (default: the tokenizer's and the model's limit, whichever is lower).
    ``backend``, ``quantize``, ``dtype``, ``max_batch_tokens``: see
    :class:`~hf_spam.serving.arguments.ServingArguments` (:meth:`from_arguments` takes one).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        device: str | None = None,
        max_length: int | None = None,
        long_text: LongText = DEFAULT_LONG_TEXT,
        threshold: float | None = None,
        temperature: float | None = None,
        *,
        backend: Backend = "torch",
        quantize: Quantize = "none",
        dtype: DType = "float32",
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        if long_text not in LONG_TEXT_MODES:
            raise ValueError(f"long_text {long_text!r}: choose one of {LONG_TEXT_MODES}")
        self.options = ServingArguments(backend=backend, quantize=quantize, dtype=dtype,
                                        max_batch_tokens=max_batch_tokens, long_text=long_text,
                                        max_length=max_length, threshold=threshold, temperature=temperature,
                                        device=device)  # fmt: skip
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if backend == "torch":
            check_device(self.device, quantize, dtype)  # before anything loads
        directory = resolve_run(directory)  # a folder, or a hub repo id
        self.directory = Path(directory)
        self.long_text = long_text
        self.max_batch_tokens = max_batch_tokens
        self.text_pair_column = text_pair_column(self.directory)
        self.scorer: TextScorer | None = load_scorer(self.directory, self.device)
        if self.scorer is not None:  # a run kind that reads whole texts itself: no model, no windows
            self.tokenizer, self.model, self.id2label = None, None, self.scorer.id2label
            self.max_length = max_length
        else:
            self.tokenizer = load_tokenizer(directory)
            self.model, self.backend, self.id2label, limit = self._load_model(self.directory)
            limits = [min(self.tokenizer.model_max_length, 1_000_000), limit or 1_000_000]
            self.max_length = max_length or min(limits)
        self.operating_point = OperatingPoint.load(run_file(directory, OPERATING_POINT_FILE))
        self.temperature = temperature if temperature is not None else self.operating_point.temperature
        self.threshold = threshold if threshold is not None else self.operating_point.threshold
        if self.threshold is not None and len(self.id2label) != 2:
            raise ValueError(f"a threshold is for two classes; this model has {len(self.id2label)}")
        point = self.operating_point
        if point.positive_label is not None and point.positive_label != self.id2label.get(1):
            raise ValueError(
                f"{directory}/{OPERATING_POINT_FILE} is for positive class {point.positive_label!r}, "
                f"but the model's class 1 is {self.id2label.get(1)!r}"
            )
        if self.scorer is not None:
            return
        self._frame = self._special_tokens()
        if self.max_length <= sum(map(len, self._frame)):
            raise ValueError(f"max_length {self.max_length} leaves no room for text")
        self._log_measured_accuracy()

    @classmethod
    def from_arguments(cls, directory: str | os.PathLike, args: ServingArguments) -> Predictor:
        """A Predictor serving ``directory`` as ``args`` say."""
        return cls(directory, **asdict(args))

    def _load_model(
        self, directory: Path
    ) -> tuple[torch.nn.Module | None, TorchBackend | OnnxBackend, dict[int, str], int | None]:
        """The torch model (None for onnxruntime), the backend that runs it, its classes and context."""
        options = self.options
        if options.backend == "onnxruntime":
            name = ONNX_QUANTIZED if options.quantize == "int8" else ONNX_MODEL
            path = directory / ONNX_DIR / name
            record = read_json(directory / ONNX_DIR, ONNX_EXPORT_FILE)
            if not path.is_file() or record is None:
                quantize = " --quantize int8" if options.quantize == "int8" else ""
                raise FileNotFoundError(
                    f"{path} not found: export the run first (python recipes/export_onnx.py --run "
                    f"{directory}{quantize})"
                )
            id2label = {int(k): v for k, v in record["id2label"].items()}
            return None, OnnxBackend(path), id2label, record.get("context_length")
        model = load_classifier(directory, self.tokenizer)
        model = prepare_torch_model(model, self.device, options.quantize, options.dtype)
        id2label = getattr(model, "id2label", None) or {int(k): v for k, v in model.config.id2label.items()}
        return model, TorchBackend(model, self.device), id2label, context_length(model)

    def _log_measured_accuracy(self) -> None:
        variant = self.options.variant()
        if variant == "torch-float32":
            return
        record = (read_json(self.directory, SERVING_ACCURACY_FILE) or {}).get(variant)
        if record:
            logger.info("%s on this run's test split: accuracy %+.2f points against float32 torch (%s)",
                        variant, record["delta_points"], self.directory / SERVING_ACCURACY_FILE)  # fmt: skip
        else:
            logger.info("%s: its accuracy on this run's test split is not measured yet "
                        "(recipes/predict.py --measure_accuracy)", variant)  # fmt: skip

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after a text (e.g. ``[CLS]``, ``[SEP]``)."""
        plain = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a")["input_ids"]
        start = next(i for i in range(len(full)) if full[i : i + len(plain)] == plain)
        return full[:start], full[start + len(plain) :]

    def _bodies(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's tokens without special tokens: the fast tokenizer on many texts per call."""
        out: list[list[int]] = []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            chunk = list(texts[start : start + TOKENIZE_CHUNK])
            out += self.tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]
        return out

    def _cut(self, body: list[int]) -> tuple[list[list[int]], int]:
        """The windows of one text's tokens under :attr:`long_text`, and its token count."""
        prefix, suffix = self._frame
        budget = self.max_length - len(prefix) - len(suffix)
        if len(body) <= budget:
            pieces = [body]
        elif self.long_text == "truncate":
            pieces = [body[:budget]]
        elif self.long_text == "head_tail":
            head = budget // 4
            pieces = [body[:head] + body[len(body) - (budget - head) :]]
        else:
            pieces = [body[i : i + budget] for i in range(0, len(body), budget)]
        return [prefix + piece + suffix for piece in pieces], len(body) + len(prefix) + len(suffix)

    def windows(self, text: str) -> tuple[list[list[int]], int]:
        """The token sequences the model reads for ``text`` under :attr:`long_text`, and its token count
        (special tokens included)."""
        return self._cut(self._bodies([text])[0])

    def window_logits(
        self, sequences: list[list[int]], batch_size: int | None = None, progress: bool = False
    ) -> torch.Tensor:
        """Class logits ``(len(sequences), num_labels)`` of token sequences, in their order: sorted by
        length, batched up to :attr:`max_batch_tokens` padded tokens (and ``batch_size`` rows)."""
        out = torch.empty(len(sequences), len(self.id2label))
        batches = token_budget_batches([len(s) for s in sequences], self.max_batch_tokens, batch_size)
        bar = tqdm(total=len(sequences), unit="window", disable=not progress, desc="predicting")
        for batch in batches:
            padded = self.tokenizer.pad({"input_ids": [sequences[i] for i in batch]}, return_tensors="pt")
            out[batch] = self.backend.logits(padded["input_ids"], padded["attention_mask"])
            bar.update(len(batch))
        bar.close()
        return out

    @torch.inference_mode()
    def _pair_probabilities(
        self, texts: list[str], text_pairs: list[str], batch_size: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Sentence pairs, read as in training (:func:`hf_spam.data.pairs.encode`: the pair encoding with its
        segment ids, or the texts joined), cut to :attr:`max_length` (no windows: a pair is read whole or
        truncated, and the result says so)."""
        out, info = [], []
        for start in range(0, len(texts), batch_size):
            chunk = slice(start, start + batch_size)
            full = encode(self.tokenizer, texts[chunk], text_pairs[chunk])["input_ids"]
            batch = encode(
                self.tokenizer, texts[chunk], text_pairs[chunk], truncation=True, max_length=self.max_length,
                padding=True, return_tensors="pt",
            ).to(self.device)  # fmt: skip
            inputs = {
                k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")
            }
            logits = self.model(**inputs).logits
            out.append(torch.softmax(logits.float() / self.temperature, -1).cpu())
            info += [{"long_text": "truncate", "tokens": len(ids), "chunks": 1,
                      "truncated": len(ids) > self.max_length} for ids in full]  # fmt: skip
        return (torch.cat(out) if out else torch.empty(0, len(self.id2label))), info

    def predict(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        *,
        progress: bool = False,
        text_pairs: Sequence[str] | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Calibrated class probabilities ``(len(texts), num_labels)`` and, per text, how it was read
        (``long_text``, ``tokens``, ``chunks``, ``truncated``). ``batch_size``: at most this many windows per
        batch (default: as many as :attr:`max_batch_tokens` allows); ``progress``: a progress bar;
        ``text_pairs``: the second texts, for a run trained on sentence pairs (and only for one)."""
        texts = list(texts)
        text_pairs = None if text_pairs is None else list(text_pairs)
        if (text_pairs is not None) != (self.text_pair_column is not None):
            column = self.text_pair_column
            wanted = f"sentence pairs (--text_pair_column {column}): give each text's pair" if column else (
                "one text per example, not pairs"
            )  # fmt: skip
            raise ValueError(f"this run reads {wanted}")
        if self.scorer is not None:
            logits = self.scorer.logits(texts, text_pairs)
            probs = torch.softmax(logits.float().cpu() / self.temperature, -1)
            return probs, self.scorer.describe(texts, text_pairs)
        if text_pairs is not None:
            if self.model is None:
                raise ValueError("a sentence-pair run is served by the torch backend only: drop --backend")
            return self._pair_probabilities(texts, text_pairs, batch_size or DEFAULT_PAIR_BATCH)
        sequences, owners, weights, info = [], [], [], []
        special = sum(map(len, self._frame))
        for i, body in enumerate(self._bodies(texts)):
            pieces, tokens = self._cut(body)
            sequences += pieces
            owners += [i] * len(pieces)
            weights += [max(len(p) - special, 1) for p in pieces]
            kept = sum(len(p) - special for p in pieces) + special
            info.append({"long_text": self.long_text, "tokens": tokens, "chunks": len(pieces),
                         "truncated": kept < tokens})  # fmt: skip
        probs = torch.softmax(self.window_logits(sequences, batch_size, progress) / self.temperature, -1)
        if len(sequences) == len(texts):
            return probs, info
        weight = torch.tensor(weights, dtype=probs.dtype)[:, None]
        index = torch.tensor(owners)
        total = torch.zeros(len(texts), probs.shape[1]).index_add_(0, index, probs * weight)
        norm = torch.zeros(len(texts), 1).index_add_(0, index, weight)
        return total / norm, info

    def probabilities(
        self, texts: Sequence[str], batch_size: int | None = None, *, text_pairs: Sequence[str] | None = None
    ) -> torch.Tensor:
        """Calibrated class probabilities ``(len(texts), num_labels)``."""
        return self.predict(texts, batch_size, text_pairs=text_pairs)[0]

    def decide(self, row: list[float], threshold: float | None = None) -> int:
        """The class id for one row of probabilities: ``p(class 1) >= threshold`` with two classes and a
        threshold (``threshold`` overrides the run's), else the most probable class."""
        threshold = self.threshold if threshold is None else threshold
        if threshold is not None and len(row) == 2:
            return int(row[1] >= threshold)
        return max(range(len(row)), key=row.__getitem__)

    def __call__(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        threshold: float | None = None,
        *,
        progress: bool = False,
        text_pairs: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per text: ``label``, its ``probability``, every class's ``probabilities``, the
        ``threshold`` and ``temperature`` applied, and how a long text was read."""
        probs, info = self.predict(texts, batch_size, progress=progress, text_pairs=text_pairs)
        threshold = self.threshold if threshold is None else threshold
        results = []
        for row, read in zip(probs.tolist(), info, strict=True):
            best = self.decide(row, threshold)
            results.append(
                {
                    "label": self.id2label[best],
                    "probability": row[best],
                    "probabilities": {self.id2label[i]: p for i, p in enumerate(row)},
                    "threshold": threshold if len(row) == 2 else None,
                    "temperature": self.temperature,
                    **read,
                }
            )
        return results
