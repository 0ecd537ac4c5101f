"""What a run leaves in ``outputs/<run>/``: metrics.json, args.json, history.json, curves.png, the model."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

METRICS_SCHEMA_VERSION = 1  # bump when the layout of metrics.json changes
OPTIONAL_SECONDS = ("cache_building", "saving")  # besides training and evaluation, where a recipe has them


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
) -> dict[str, Any]:
    """The one ``metrics.json`` layout of every recipe (fine-tuning and frozen features alike).

    ``splits``: per split the metrics of :func:`hf_spam.metrics.classification_metrics` plus ``loss``.
    ``seconds``: ``training`` (fitting only) and ``evaluation`` (every evaluation, during and after); the
    ``cache_building`` (the frozen-prefix cache) and ``saving`` (the run folder) are 0.0 where a recipe has
    no such phase (the frozen-features recipe counts its feature extraction as training).
    ``best``: how the reported model was picked on validation: ``metric``, ``value``, ``step`` (None when
    there are no steps). ``details``: what only this recipe has (optimizer steps, chosen ``C``, ...).
    ``operating_point``: the threshold and temperature chosen on validation, with every split at 0.5 and at
    that threshold and calibration before/after (:func:`hf_spam.operating_point.select_operating_point`);
    ``None`` where a recipe picks none.
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
        "split_sizes": {name: m["n"] for name, m in splits.items()},
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


PREDICTIONS_FILE = "test_predictions.csv"  # per test example, in split order: for paired comparisons


def write_predictions(path: Path, probabilities: Any, labels: Any) -> None:
    """One CSV row per example, in order: ``index``, ``label``, ``predicted`` (argmax) and ``prob_<k>`` of
    each class ``k`` -- what :mod:`hf_spam.study` pairs across runs on the same test split."""
    import csv

    import numpy as np

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


def claim_run_dir(run_dir: Path, overwrite: bool, resume: str | None) -> None:
    """Make sure a new run does not mix with another one: an existing, non-empty ``run_dir`` is an error
    naming it, unless the run resumes (``resume``) or ``overwrite`` says to delete it. Call it on one
    process (:func:`hf_spam.run.on_main_process`)."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()) or resume:
        return
    if not overwrite:
        raise FileExistsError(
            f"the run folder {run_dir} exists already: choose another --run_name, continue it with "
            "--resume_from_checkpoint latest, or replace it with --overwrite_output_dir"
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
    write_json(run_dir / "args.json", data)


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """``curves.png``: loss and accuracy against optimizer steps, train vs validation (the book's figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        logger.warning("no evaluation history; %s not written", path)
        return
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        train = [
            (s, h[f"train_{metric}"])
            for s, h in zip(steps, history, strict=True)
            if h[f"train_{metric}"] is not None
        ]
        if train:
            ax.plot(*zip(*train, strict=True), marker="o", label=f"training {label}")
        ax.plot(
            steps,
            [h[f"val_{metric}"] for h in history],
            marker="s",
            linestyle="-.",
            label=f"validation {label}",
        )
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        epochs = ax.secondary_xaxis("top", functions=_step_to_epoch(history))
        epochs.set_xlabel("epochs")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _step_to_epoch(history: list[dict[str, Any]]):
    import numpy as np

    steps = np.array([0.0] + [h["step"] for h in history])
    epochs = np.array([0.0] + [h["epoch"] for h in history])
    return (lambda x: np.interp(x, steps, epochs)), (lambda e: np.interp(e, epochs, steps))
