"""The one place that knows a run folder, ``outputs/<run>/``: its files, and how they are written and read.

A finished run holds:

- ``metrics.json`` (:func:`metrics_record`, the same layout for every recipe; written last: a folder with it
  is complete), ``args.json`` (every argument group, the command line, library versions), ``history.json``
  and ``curves.png`` (fine-tuning), ``test_predictions.csv`` (per test example, for paired comparisons);
- ``operating_point.json`` (threshold and temperature chosen on validation) and ``examples.json`` (a few
  test texts for the app);
- the model: ``config.json`` + ``model.safetensors`` (+ the tokenizer), or a peft adapter
  (``adapter_config.json``, ``adapter_model.safetensors``) with ``lora_base.json``, the record that
  rebuilds its base offline; optionally ``merged/`` (the adapter merged into its base);
- optionally ``onnx/`` (``model.onnx``, ``model_quantized.onnx``, ``export.json``: ``recipes/export_onnx.py``)
  and ``serving_accuracy.json`` (test accuracy of each serving variant against float32 torch);
- while training, ``checkpoints/`` (resumable, see :mod:`hf_spam.training.checkpoints`);
- an in-context run (:mod:`hf_spam.in_context`) has no weights of its own: ``in_context.json`` names its
  decoder and holds its prompt, label words and demonstrations (+ ``in_context_index.safetensors`` for kNN).
- a nearest-neighbour run (``frozen_features.py --method knn``) holds no model: ``knn.json`` (the backbone
  that embeds texts, the pooling, ``k``, the classes) and ``knn_index.safetensors`` (the training split's
  unit-length embeddings and labels), which :class:`~hf_spam.serving.Predictor` loads.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import shutil
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import HubError

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
ARGS_FILE = "args.json"
HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"
PREDICTIONS_FILE = "test_predictions.csv"  # per test example, in split order: for paired comparisons
OPERATING_POINT_FILE = "operating_point.json"
EXAMPLES_FILE = "examples.json"
CARD_FILE = "README.md"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_BASE_FILE = "lora_base.json"  # how hf_spam rebuilds an adapter's base (our GPT-2 from its seed)
MERGED_DIR = "merged"
CHECKPOINTS_DIR = "checkpoints"
ONNX_DIR = "onnx"  # the export: ONNX_MODEL, ONNX_QUANTIZED (int8) and ONNX_EXPORT_FILE (how it was made)
ONNX_MODEL = "model.onnx"
ONNX_QUANTIZED = "model_quantized.onnx"
ONNX_EXPORT_FILE = "export.json"
SERVING_ACCURACY_FILE = "serving_accuracy.json"  # per serving variant: test accuracy vs float32 torch
IN_CONTEXT_FILE = "in_context.json"  # an in-context run: decoder, template, label words, demonstrations
IN_CONTEXT_INDEX_FILE = "in_context_index.safetensors"  # its kNN demonstrations' training embeddings
KNN_FILE = "knn.json"  # marks a nearest-neighbour run: its backbone, pooling, k and classes
KNN_INDEX_FILE = "knn_index.safetensors"  # its index: the training embeddings (unit length) and labels

MODEL_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "model-*-of-*.safetensors",
    "model.safetensors.index.json", "pytorch_model*.bin",
    "*.py",  # the pooling code a first/mean model ships for trust_remote_code
)  # fmt: skip
ADAPTER_FILES = (ADAPTER_CONFIG, "adapter_model.safetensors", "adapter_model.bin", ADAPTER_BASE_FILE)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model", "chat_template.jinja",
)  # fmt: skip
RUN_FILES = (
    CARD_FILE,
    METRICS_FILE,
    ARGS_FILE,
    HISTORY_FILE,
    CURVES_FILE,
    OPERATING_POINT_FILE,
    EXAMPLES_FILE,
)

METRICS_SCHEMA_VERSION = 1  # bump when the layout of metrics.json changes
OPTIONAL_SECONDS = ("cache_building", "saving")  # besides training and evaluation, where a recipe has them


def is_adapter_run(run_dir: str | os.PathLike) -> bool:
    """True when ``run_dir`` holds a peft adapter (a ``--trainable lora`` run) rather than a whole model."""
    return (Path(run_dir) / ADAPTER_CONFIG).is_file()


def is_finished(run_dir: str | os.PathLike) -> bool:
    """True when the run wrote its ``metrics.json`` (the last file a run writes)."""
    return (Path(run_dir) / METRICS_FILE).is_file()


def run_file(run_dir: str | os.PathLike, name: str) -> Path | None:
    """``name`` in the run folder, or ``None`` when it has no such file."""
    path = Path(run_dir) / name
    return path if path.is_file() else None


def read_json(run_dir: str | os.PathLike, name: str) -> Any:
    """The JSON file ``name`` of the run, or ``None`` when it is absent or not JSON."""
    path = run_file(run_dir, name)
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        logger.warning("%s: not valid JSON, ignored", path)
        return None


def files_to_push(run_dir: str | os.PathLike) -> list[Path]:
    """The files of a run folder a user of the pushed repo needs, in push order.

    The adapter when ``adapter_config.json`` is there, else the model (config and weights); then the
    tokenizer, the card, ``metrics.json``, ``args.json``, ``history.json``, ``curves.png``, the operating
    point and the examples. Never checkpoints or the best-weights scratch file.
    """
    run_dir = Path(run_dir)
    weights = ADAPTER_FILES if is_adapter_run(run_dir) else MODEL_FILES
    found = [p for pattern in (*weights, *TOKENIZER_FILES, *RUN_FILES) for p in sorted(run_dir.glob(pattern))]
    if not any(p.suffix in (".safetensors", ".bin") for p in found):
        raise HubError(
            f"{run_dir} holds no model to push (no model.safetensors or adapter weights): "
            "pass a run folder trained with --save_model true"
        )
    return list(dict.fromkeys(p for p in found if p.is_file()))


def metrics_record(
    *,
    recipe: str,
    run_dir: Path,
    model: str,
    implementation: str,
    dataset: str,
    splits: dict[str, dict[str, Any]],
    split_report: Any,
    seconds: dict[str, float],
    examples: int,
    best: dict[str, Any],
    details: dict[str, Any],
    parameters: dict[str, int],
    device: torch.device,
    num_processes: int = 1,
    mixed_precision: str = "no",
    operating_point: dict[str, Any] | None = None,
    unscored: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The one ``metrics.json`` layout of every recipe (fine-tuning and frozen features alike).

    ``splits``: per split the metrics of :func:`~hf_spam.evaluation.metrics.classification_metrics` and
    ``loss``.
    ``seconds``: ``training`` (fitting only) and ``evaluation`` (every evaluation, during and after); the
    ``cache_building`` (the frozen-prefix cache) and ``saving`` (the run folder) are 0.0 where a recipe has
    no such phase (the frozen-features recipe counts its feature extraction as training).
    ``best``: how the reported model was picked on validation: ``metric``, ``value``, ``step`` (None when
    there are no steps). ``details``: what only this recipe has (optimizer steps, chosen ``C``, ...).
    ``operating_point``: the threshold and temperature chosen on validation, with every split at 0.5 and at
    that threshold and calibration before/after
    (:func:`~hf_spam.evaluation.operating_point.select_operating_point`);
    ``None`` where a recipe picks none.
    ``unscored``: the sizes of splits a run read but did not score (in-context learning's labelled pool,
    ``train``), so that ``split_sizes`` names every split the run used.
    """
    if not {"training", "evaluation"} <= set(seconds) <= {"training", "evaluation", *OPTIONAL_SECONDS}:
        raise ValueError(
            f"seconds needs training and evaluation (and may have {OPTIONAL_SECONDS}), got {sorted(seconds)}"
        )
    if set(best) != {"metric", "value", "step"}:
        raise ValueError(f"best needs metric, value and step, got {sorted(best)}")
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "recipe": recipe,
        "run": run_dir.name,
        "model": model,
        "implementation": implementation,
        "dataset": dataset,
        "splits": splits,
        "split_sizes": (unscored or {}) | {name: m["n"] for name, m in splits.items()},
        "split_report": split_report,
        "seconds": {"training": 0.0, "evaluation": 0.0, **dict.fromkeys(OPTIONAL_SECONDS, 0.0), **seconds},
        "training": {
            "examples": examples,
            "examples_per_second": examples / seconds["training"] if seconds["training"] else None,
            "best": best,
            "details": details,
        },
        "parameters": parameters,
        "peak_memory": peak_memory_mb(device),
        "device": device_description(device),
        "num_processes": num_processes,
        "mixed_precision": mixed_precision,
        "operating_point": operating_point,
    }


def write_predictions(path: Path, probabilities: Any, labels: Any) -> None:
    """One CSV row per example, in order: ``index``, ``label``, ``predicted`` (argmax) and ``prob_<k>`` of
    each class ``k`` -- what :mod:`hf_spam.study` pairs across runs on the same test split."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"probabilities {probabilities.shape} do not match {len(labels)} labels")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["index", "label", "predicted", *(f"prob_{k}" for k in range(probabilities.shape[1]))]
        )
        for i, (row, label) in enumerate(zip(probabilities, labels, strict=True)):
            writer.writerow([i, int(label), int(row.argmax()), *(f"{p:.6g}" for p in row)])


def claim_run_dir(run_dir: Path, overwrite: bool, resume: str | None = None, resumable: bool = True) -> None:
    """Make sure a new run does not mix with another one: an existing, non-empty ``run_dir`` is an error
    naming it, unless the run resumes (``resume``) or ``overwrite`` says to delete it. ``resumable``: the
    recipe has checkpoints to resume from (the error then says so). Call it on one process
    (:func:`hf_spam.training.processes.on_main_process`)."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()) or resume:
        return
    if not overwrite:
        resuming = "continue it with --resume_from_checkpoint latest, " if resumable else ""
        raise FileExistsError(
            f"the run folder {run_dir} exists already: choose another --run_name, {resuming}"
            "or replace it with --overwrite_output_dir"
        )
    logger.warning("--overwrite_output_dir: deleting the earlier run folder %s", run_dir)
    shutil.rmtree(run_dir)


def device_description(device: torch.device) -> str:
    """The device in words: GPU name, or the CPU model and thread count."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{device.type}: {model}, {torch.get_num_threads()} threads"


def peak_memory_mb(device: torch.device) -> dict[str, Any]:
    """Peak memory of this process so far: CUDA peak allocated, or the peak resident set size on CPU."""
    if device.type == "cuda":
        return {"kind": "cuda_max_allocated", "mb": torch.cuda.max_memory_allocated(device) / 2**20}
    try:
        with open("/proc/self/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return {"kind": "cpu_peak_rss", "mb": kib / 1024}
    except (OSError, StopIteration):
        import resource

        return {"kind": "cpu_peak_rss", "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` (dataclasses allowed) as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_args(run_dir: Path, *arg_groups: Any) -> None:
    """``args.json``: every argument dataclass, the command line and library versions."""
    import accelerate
    import datasets
    import transformers

    data = {type(group).__name__: asdict(group) for group in arg_groups}
    data["command"] = sys.argv
    data["versions"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
    }
    write_json(run_dir / ARGS_FILE, data)


def sample_examples(
    test: Any, id2label: dict[int, str], per_class: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """Up to ``per_class`` random texts of each class of the ``test`` split (a ``datasets.Dataset``):
    ``[{"text", "label"}]``, for :data:`EXAMPLES_FILE`."""
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
    """:data:`EXAMPLES_FILE` in ``run_dir`` (the split they come from is named in the file)."""
    data = {"split": "test", "examples": examples}
    (Path(run_dir) / EXAMPLES_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_examples(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's test examples (``[]`` when the run has none, e.g. one trained before they were saved)."""
    data = read_json(run_dir, EXAMPLES_FILE)
    if not data:
        logger.warning("%s has no %s: the app shows no example messages", run_dir, EXAMPLES_FILE)
        return []
    return list(data.get("examples", []))
