"""The book's protocol end to end, three ways, in one process on identical data: does the cache pay?

5 epochs of ``--trainable last_block``, batch 8, lr 5e-5, evaluation every 50 steps (the book's
protocol; any recipe flag may be added after the bench's own), run as:

* ``book``:  every example padded to the longest training example, shuffled batches, no cache;
* ``today``: dynamic padding and length-grouped batches, no cache (the fastest mode before the cache);
* ``cache``: as ``today``, plus the frozen-prefix cache (``--cache_frozen auto``), built from scratch.

Each mode runs :func:`hf_spam.training.fine_tune.run_classification` with a fresh ``HF_SPAM_CACHE`` folder,
so every mode pays its own tokenisation and the cache mode pays for building its cache. Printed per mode:
training seconds of each epoch, training / evaluation / cache-building / saving seconds, the whole call's
wall time (data, model, cache, training, evaluation, saving), its ratio to ``book``, and the test accuracy.
Not in the wall time: Python and library imports, the same for every mode. The machine's 1-minute load
average before and after each mode is printed too: on a shared machine, compare ratios only where it is
steady.

    python bench/frozen_cache.py --tokenizer ../shared/models/gpt2-tokenizer --weights random \\
        --data_source ../shared/data/sms_spam/SMSSpamCollection
    python bench/frozen_cache.py --implementation transformers --model ../models/SmolLM2-135M-Instruct \\
        --data_source ../shared/data/sms_spam/SMSSpamCollection
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState

from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.cli import configure_logging
from hf_spam.evaluation.operating_point import OperatingPointArguments
from hf_spam.models.adapters import AdapterArguments
from hf_spam.run_folder import device_description
from hf_spam.training.fine_tune import run_classification

BOOK = ["--trainable", "last_block", "--batch_size", "8", "--learning_rate", "5e-5", "--eval_every", "50"]
MODES = {
    "book": ["--padding", "longest_in_dataset", "--cache_frozen", "off", "--eval_batch_size", "8"],
    "today": ["--group_by_length", "true", "--cache_frozen", "off", "--eval_batch_size", "8"],
    "cache": ["--group_by_length", "true", "--cache_frozen", "auto"],
}
GROUPS = (ModelArguments, DataArguments, TrainArguments, AdapterArguments, OperatingPointArguments)


def run_mode(name: str, recipe_args: list[str], output_dir: Path) -> dict:
    """One mode, timed as a whole, with its own empty cache folder; returns the row of the table."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as cache:
        os.environ["HF_SPAM_CACHE"] = cache
        argv = [*BOOK, *recipe_args, *MODES[name], "--output_dir", str(output_dir), "--run_name", name,
                "--overwrite_output_dir"]  # fmt: skip
        load_before, start = os.getloadavg()[0], time.perf_counter()
        metrics = run_classification(*parse_args(GROUPS, argv))
        wall = time.perf_counter() - start
    AcceleratorState._reset_state(reset_partial_state=True)
    details = metrics["training"]["details"]
    return {
        "mode": name,
        "wall_seconds": wall,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "seconds": metrics["seconds"],
        "epoch_training_seconds": details["epoch_training_seconds"],
        "frozen_prefix_cache": details["frozen_prefix_cache"],
        "test_accuracy": metrics["splits"]["test"]["accuracy"],
        "validation_accuracy": metrics["splits"]["validation"]["accuracy"],
        "test_confusion_matrix": metrics["splits"]["test"]["confusion_matrix"],
        "best_step": metrics["training"]["best"]["step"],
        "argv": argv,
    }


def table(rows: list[dict]) -> str:
    """The printed comparison (markdown)."""
    book = next((r["wall_seconds"] for r in rows if r["mode"] == "book"), None)
    lines = [
        "| mode | epoch training s | training s | evaluation s | cache building s | saving s | total s "
        "| vs book | test acc | val acc | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["seconds"]
        epochs = " / ".join(f"{e:.1f}" for e in r["epoch_training_seconds"])
        ratio = f"{book / r['wall_seconds']:.2f}x" if book else "-"
        load = r["load_average_1min"]
        lines.append(
            f"| {r['mode']} | {epochs} | {s['training']:.1f} | {s['evaluation']:.1f} "
            f"| {s['cache_building']:.1f} | {s['saving']:.1f} | {r['wall_seconds']:.1f} | {ratio} "
            f"| {100 * r['test_accuracy']:.2f} % "
            f"| {100 * r['validation_accuracy']:.2f} % | {load[0]} / {load[1]} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument(
        "--bench_output", default="outputs/bench-frozen-cache", help="run folders and result.json"
    )
    args, recipe_args = parser.parse_known_args(argv)
    configure_logging()
    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(args.bench_output)
    rows = [run_mode(name, recipe_args, out) for name in args.modes]
    device = device_description(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    result = {"device": device, "threads": torch.get_num_threads(), "recipe_args": recipe_args, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"device: {device}; recipe args: {' '.join(recipe_args)}")
    print(table(rows))
    agree = {r["mode"]: r["test_confusion_matrix"] for r in rows}
    print(f"test confusion matrices: {json.dumps(agree)}")


if __name__ == "__main__":
    sys.exit(main())
