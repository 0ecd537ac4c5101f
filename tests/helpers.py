"""Small helpers shared by the tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import torch

REPO = Path(__file__).resolve().parents[1]


def recipe(name: str) -> ModuleType:
    """Import ``recipes/<name>.py`` as a module (its ``main(argv)`` runs the recipe in-process)."""
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def logits(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits for a batch, without gradients."""
    with torch.no_grad():
        return model(**inputs).logits


def train_steps(model, inputs: dict[str, torch.Tensor], steps: int = 3) -> None:
    """A few AdamW steps (the recipes' optimizer, weight decay on) on a fixed batch of three labelled rows."""
    from hf_spam.training.trainer import optimizer_for

    model.train()
    optimizer = optimizer_for(model, learning_rate=1e-2, weight_decay=0.1)
    labels = torch.tensor([1, 0, 1])
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
