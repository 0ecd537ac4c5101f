"""What a run folder offers the web app besides the model: a few test-split examples, metrics, curves.

Training writes ``examples.json`` (a few messages of each class from the held-back test split) into the run
folder, so the app shows real examples without needing the data. Every file is read from a local run
folder or, for a hub repo id, through ``transformers``' ``cached_file`` (the hub cache); a file that is
not there is ``None``, and the app says so instead of failing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from datasets import Dataset

logger = logging.getLogger(__name__)

EXAMPLES_FILE = "examples.json"


def sample_examples(
    test: Dataset, id2label: dict[int, str], per_class: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """Up to ``per_class`` random texts of each class of the ``test`` split: ``[{"text", "label"}]``."""
    if "text" not in test.column_names or "label" not in test.column_names:
        return []
    shuffled = test.shuffle(seed=seed)
    chosen: dict[int, list[str]] = {label: [] for label in id2label}
    for text, label in zip(shuffled["text"], shuffled["label"], strict=True):
        if len(chosen[label]) < per_class:
            chosen[label].append(text)
        if all(len(texts) == per_class for texts in chosen.values()):
            break
    return [{"text": text, "label": id2label[label]} for label, texts in chosen.items() for text in texts]


def write_examples(run_dir: str | os.PathLike, examples: list[dict[str, Any]]) -> None:
    """``examples.json`` in ``run_dir`` (the split they come from is named in the file)."""
    data = {"split": "test", "examples": examples}
    (Path(run_dir) / EXAMPLES_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def run_file(run: str | os.PathLike, name: str) -> Path | None:
    """``name`` in the run folder ``run``, or ``None`` when it has no such file."""
    path = Path(run) / name
    return path if path.is_file() else None


def read_json(run: str | os.PathLike, name: str) -> Any:
    """The JSON file ``name`` of the run, or ``None`` when absent."""
    path = run_file(run, name)
    return json.loads(path.read_text()) if path else None


def read_examples(run: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's test examples (``[]`` when the run has none, e.g. one trained before they were saved)."""
    data = read_json(run, EXAMPLES_FILE)
    if not data:
        logger.warning("%s has no %s: the app shows no example messages", run, EXAMPLES_FILE)
        return []
    return list(data.get("examples", []))
