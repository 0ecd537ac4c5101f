"""Predictions from a saved classifier (a run folder or a hub repo id): label and probabilities per text."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from .classifier import load_classifier
from .hub import resolve_run
from .tokenizer import load_tokenizer

logger = logging.getLogger(__name__)


class Predictor:
    """``Predictor(run_dir)(texts)`` -> ``[{"label", "probability", "probabilities"}, ...]``."""

    def __init__(
        self, directory: str | os.PathLike, device: str | None = None, max_length: int | None = None
    ) -> None:
        directory = resolve_run(directory)  # a folder, or a hub repo id
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = load_classifier(directory).to(self.device).eval()
        self.tokenizer = load_tokenizer(directory)
        self.max_length = max_length or min(self.tokenizer.model_max_length, 1_000_000)
        self.id2label = getattr(self.model, "id2label", None) or {
            int(k): v for k, v in self.model.config.id2label.items()
        }

    @torch.inference_mode()
    def probabilities(self, texts: list[str], batch_size: int = 16) -> torch.Tensor:
        """Class probabilities ``(len(texts), num_labels)``."""
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            out.append(torch.softmax(logits.float(), -1).cpu())
        return torch.cat(out) if out else torch.empty(0, len(self.id2label))

    def __call__(self, texts: list[str], batch_size: int = 16) -> list[dict[str, Any]]:
        probs = self.probabilities(texts, batch_size)
        results = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                {
                    "label": self.id2label[best],
                    "probability": row[best],
                    "probabilities": {self.id2label[i]: p for i, p in enumerate(row)},
                }
            )
        return results
