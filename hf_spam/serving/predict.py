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
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal, get_args

import torch

from ..data.pairs import encode
from ..data.tokenizer import load_tokenizer
from ..evaluation.operating_point import OperatingPoint
from ..hub.access import resolve_run
from ..models.load import load_classifier
from ..run_folder import ARGS_FILE, KNN_FILE, OPERATING_POINT_FILE, read_json, run_file

logger = logging.getLogger(__name__)

LongText = Literal["truncate", "head_tail", "chunks"]
LONG_TEXT_MODES: tuple[str, ...] = get_args(LongText)
DEFAULT_LONG_TEXT: LongText = "chunks"


def load_scorer(directory: str | os.PathLike, device: torch.device) -> Any:
    """The scorer of a run that holds no saved classifier -- a nearest-neighbour index
    (:class:`~hf_spam.frozen_features.knn.KnnScorer`) -- or None. A scorer has ``id2label`` and
    ``logits(texts[, text_pairs])`` ``(n, num_labels)`` (log-probabilities; the Predictor applies the run's
    temperature and threshold), and may say how it read each text (``reading(texts, text_pairs)``: the
    ``long_text``, ``tokens``, ``chunks``, ``truncated`` of :meth:`Predictor.predict`)."""
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
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        device: str | None = None,
        max_length: int | None = None,
        long_text: LongText = DEFAULT_LONG_TEXT,
        threshold: float | None = None,
        temperature: float | None = None,
    ) -> None:
        directory = resolve_run(directory)  # a folder, or a hub repo id
        if long_text not in LONG_TEXT_MODES:
            raise ValueError(f"long_text {long_text!r}: choose one of {LONG_TEXT_MODES}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.text_pair_column = text_pair_column(directory)
        self.scorer = load_scorer(directory, self.device)  # a run that is no saved classifier (kNN), or None
        self.long_text = long_text
        if self.scorer is not None:
            self.tokenizer, self.model, self.id2label = None, None, self.scorer.id2label
            self.max_length = max_length
        else:
            self.tokenizer = load_tokenizer(directory)
            self.model = load_classifier(directory, self.tokenizer).to(self.device).eval()
            limits = [
                min(self.tokenizer.model_max_length, 1_000_000),
                context_length(self.model) or 1_000_000,
            ]
            self.max_length = max_length or min(limits)
            self.id2label = getattr(self.model, "id2label", None) or {
                int(k): v for k, v in self.model.config.id2label.items()
            }
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

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after a text (e.g. ``[CLS]``, ``[SEP]``)."""
        plain = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a")["input_ids"]
        start = next(i for i in range(len(full)) if full[i : i + len(plain)] == plain)
        return full[:start], full[start + len(plain) :]

    def windows(self, text: str) -> tuple[list[list[int]], int]:
        """The token sequences the model reads for ``text`` under :attr:`long_text`, and its token count
        (special tokens included)."""
        prefix, suffix = self._frame
        body = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
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

    @torch.inference_mode()
    def _window_probabilities(self, sequences: list[list[int]], batch_size: int) -> torch.Tensor:
        out = []
        for start in range(0, len(sequences), batch_size):
            batch = self.tokenizer.pad(
                {"input_ids": sequences[start : start + batch_size]}, return_tensors="pt"
            ).to(self.device)
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            out.append(torch.softmax(logits.float() / self.temperature, -1).cpu())
        return torch.cat(out) if out else torch.empty(0, len(self.id2label))

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
        self, texts: list[str], batch_size: int = 16, text_pairs: list[str] | None = None
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Calibrated class probabilities ``(len(texts), num_labels)`` and, per text, how it was read
        (``long_text``, ``tokens``, ``chunks``, ``truncated``). ``text_pairs``: the second texts, for a run
        trained on sentence pairs (and only for one)."""
        if (text_pairs is not None) != (self.text_pair_column is not None):
            column = self.text_pair_column
            wanted = f"sentence pairs (--text_pair_column {column}): give each text's pair" if column else (
                "one text per example, not pairs"
            )  # fmt: skip
            raise ValueError(f"this run reads {wanted}")
        if self.scorer is not None:
            logits = (
                self.scorer.logits(texts) if text_pairs is None else self.scorer.logits(texts, text_pairs)
            )
            reading = getattr(self.scorer, "reading", None)  # how each text was read, where it says
            plain = [{"long_text": "truncate", "chunks": 1} for _ in texts]
            info = reading(texts, text_pairs) if reading else plain
            return torch.softmax(logits.float().cpu() / self.temperature, -1), info
        if text_pairs is not None:
            return self._pair_probabilities(texts, text_pairs, batch_size)
        sequences, owners, weights, info = [], [], [], []
        special = sum(map(len, self._frame))
        for i, text in enumerate(texts):
            pieces, tokens = self.windows(text)
            sequences += pieces
            owners += [i] * len(pieces)
            weights += [max(len(p) - special, 1) for p in pieces]
            kept = sum(len(p) - special for p in pieces) + special
            info.append({"long_text": self.long_text, "tokens": tokens, "chunks": len(pieces),
                         "truncated": kept < tokens})  # fmt: skip
        probs = self._window_probabilities(sequences, batch_size)
        if len(sequences) == len(texts):
            return probs, info
        weight = torch.tensor(weights, dtype=probs.dtype)[:, None]
        index = torch.tensor(owners)
        total = torch.zeros(len(texts), probs.shape[1]).index_add_(0, index, probs * weight)
        norm = torch.zeros(len(texts), 1).index_add_(0, index, weight)
        return total / norm, info

    def probabilities(
        self, texts: list[str], batch_size: int = 16, text_pairs: list[str] | None = None
    ) -> torch.Tensor:
        """Calibrated class probabilities ``(len(texts), num_labels)``."""
        return self.predict(texts, batch_size, text_pairs)[0]

    def decide(self, row: list[float], threshold: float | None = None) -> int:
        """The class id for one row of probabilities: ``p(class 1) >= threshold`` with two classes and a
        threshold (``threshold`` overrides the run's), else the most probable class."""
        threshold = self.threshold if threshold is None else threshold
        if threshold is not None and len(row) == 2:
            return int(row[1] >= threshold)
        return max(range(len(row)), key=row.__getitem__)

    def __call__(
        self,
        texts: list[str],
        batch_size: int = 16,
        threshold: float | None = None,
        text_pairs: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per text: ``label``, its ``probability``, every class's ``probabilities``, the
        ``threshold`` and ``temperature`` applied, and how a long text was read."""
        probs, info = self.predict(texts, batch_size, text_pairs)
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
