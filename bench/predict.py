"""Serving speed: hf_spam's Predictor (float32, int8, onnxruntime) against transformers.pipeline, same model.

For each run folder given (a LoRA run and its merged folder, a full fine-tune, ...) and each text set (all
5,574 SMS messages; 2,000 IMDB test reviews, a seeded random subset), every variant classifies every text.
Each variant runs in a fresh process of its own (its peak memory is that process's, reset before each text
set, the loaded model included):

- ``pipeline``: transformers' text-classification pipeline (batch 16) on the plain model: the run folder,
  or ``<run>/merged`` for an adapter run (written by merge_lora when missing);
- ``torch-float32``: the Predictor on the run folder as given (an adapter run is merged in memory);
- ``torch-int8``; ``onnxruntime-float32`` and ``onnxruntime-int8`` (the run's ``onnx/``, exported first
  when missing); on a GPU ``torch-bfloat16`` and ``torch-float16`` instead of the CPU-only variants.

Everyone reads texts the pipeline's way (truncated to the model's context, argmax), so labels compare; the
Predictor's own default (chunks, the run's threshold) is another question. Prints (with ``--output`` also
writes as markdown + json) per run and text set: seconds, texts/s, the ratio to the pipeline, peak memory,
label agreement with the pipeline and, when the texts' classes are the run's, accuracy; ``--test_accuracy``
adds each variant's accuracy change on the run's own test split (``hf_spam.serving.accuracy``, written to
``<run>/serving_accuracy.json`` too).

    python bench/predict.py --runs outputs/minilm-sms-lora outputs/minilm-sms-lora/merged \\
        --sms ../shared/data/sms_spam/SMSSpamCollection --imdb ../shared/data/imdb --test_accuracy \\
        --output docs/bench/predict_minilm
    python bench/predict.py --runs RUN --sms ... --imdb ... --max_texts 64 --in_process   # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

CPU_VARIANTS = ("pipeline", "torch-float32", "torch-int8", "onnxruntime-float32", "onnxruntime-int8")
GPU_VARIANTS = ("pipeline", "torch-float32", "torch-bfloat16", "torch-float16")


def serving_arguments(variant: str, device: str) -> Any:
    """The ServingArguments of a Predictor variant, reading texts as the pipeline does."""
    from hf_spam.serving import ServingArguments

    backend, kind = variant.split("-")
    quantize, dtype = ("int8", "float32") if kind == "int8" else ("none", kind)
    return ServingArguments(backend=backend, quantize=quantize, dtype=dtype, long_text="truncate",
                            threshold=0.5, temperature=1.0, device=device)  # fmt: skip


def peak_memory_mb(device: str) -> float:
    from hf_spam.run_folder import peak_memory_mb as peak

    return peak(torch.device(device))["mb"]


def reset_peak_memory(device: str) -> None:
    """Start this process's peak memory afresh (Linux: ``/proc/self/clear_refs``; CUDA: its counter)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):  # elsewhere the peak covers every text set so far
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set


def classifier(spec: dict[str, Any]) -> Any:
    """``texts -> labels`` for one variant: transformers' pipeline, or a Predictor."""
    if spec["variant"] == "pipeline":
        import transformers

        from hf_spam.serving.predict import context_length

        device = 0 if spec["device"].startswith("cuda") else -1
        pipe = transformers.pipeline(
            "text-classification", model=spec["model"], device=device, trust_remote_code=True
        )
        limit = min(pipe.tokenizer.model_max_length, context_length(pipe.model) or 1_000_000)
        return lambda texts: [
            o["label"] for o in pipe(texts, batch_size=spec["batch_size"], truncation=True, max_length=limit)
        ]
    from hf_spam.serving import Predictor

    predictor = Predictor.from_arguments(spec["model"], serving_arguments(spec["variant"], spec["device"]))
    return lambda texts: [r["label"] for r in predictor(texts)]


def worker(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One variant on every text set, in this process: load, then per set classify, time, peak memory
    (the loaded model included: the peak is reset before each set, not emptied)."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    start = time.perf_counter()
    classify = classifier(spec)
    load_s = time.perf_counter() - start
    out = {}
    for name, path in spec["sets"].items():
        texts = json.loads(Path(path).read_text())
        reset_peak_memory(spec["device"])
        start = time.perf_counter()
        labels = classify(texts)
        seconds = time.perf_counter() - start
        out[name] = {
            "load_s": load_s,
            "seconds": seconds,
            "labels": labels,
            "peak_mb": peak_memory_mb(spec["device"]),
        }
    return out


def run_worker(spec: dict[str, Any], in_process: bool = False) -> dict[str, dict[str, Any]]:
    """:func:`worker` in a fresh child process (its own peak memory), or here with ``in_process``."""
    if in_process:
        return worker(spec)
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec))
        subprocess.run([sys.executable, __file__, "--worker", str(spec_file), str(out_file)], check=True)
        return json.loads(out_file.read_text())


def text_sets(args: argparse.Namespace) -> dict[str, tuple[list[str], list[str]]]:
    """``{name: (texts, class names)}``: all SMS messages, a seeded subset of the IMDB test reviews."""
    from hf_spam.data import load_imdb, load_sms_spam, subset

    sets = {}
    if args.sms:
        sets["sms"] = load_sms_spam(args.sms)
    if args.imdb:
        sets["imdb"] = subset(load_imdb(args.imdb)["test"], args.imdb_texts, args.seed)
    out = {}
    for name, ds in sets.items():
        ds = subset(ds, args.max_texts, args.seed)
        names = ds.features["label"].names
        out[name] = (list(ds["text"]), [names[i] for i in ds["label"]])
    return out


def pipeline_model(run: Path) -> Path:
    """The plain model folder the pipeline reads: the run, or its merged adapter (written if missing)."""
    from hf_spam.models.adapters import merge_adapter_run
    from hf_spam.run_folder import MERGED_DIR, is_adapter_run

    if not is_adapter_run(run):
        return run
    merged = run / MERGED_DIR
    if not (merged / "config.json").is_file():
        print(f"# {run}: writing the merged model to {merged} for the pipeline", file=sys.stderr)
        merge_adapter_run(run, merged)
    return merged


def ensure_onnx(run: Path) -> None:
    """Export the run to ONNX (float32 and int8) unless it has been."""
    from hf_spam.run_folder import ONNX_DIR, ONNX_QUANTIZED
    from hf_spam.serving.onnx_export import export_onnx

    if not (run / ONNX_DIR / ONNX_QUANTIZED).is_file():
        record = export_onnx(run, quantize=True)
        print(f"# {run}: exported to ONNX in {record['seconds']} s (max |logit difference| "
              f"{record['checked']['max_abs_logit_difference']:.1e})", file=sys.stderr)  # fmt: skip


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every run x variant x text set; the pipeline once per plain model."""
    sets = text_sets(args)
    rows: list[dict[str, Any]] = []
    pipelines: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (texts, _) in sets.items():
            (Path(tmp) / f"{name}.json").write_text(json.dumps(texts))
        for run in map(Path, args.runs):
            if any(v.startswith("onnxruntime") for v in args.variants):
                ensure_onnx(run)
            plain = pipeline_model(run) if "pipeline" in args.variants else run
            for variant in args.variants:
                spec = {
                    "model": str(plain if variant == "pipeline" else run),
                    "variant": variant,
                    "sets": {name: str(Path(tmp) / f"{name}.json") for name in sets},
                    "batch_size": args.batch_size,
                    "device": args.device,
                    "threads": args.threads,
                }
                if variant == "pipeline":  # a LoRA run and its merged folder share one
                    if spec["model"] not in pipelines:
                        pipelines[spec["model"]] = run_worker(spec, args.in_process)
                    results = pipelines[spec["model"]]
                else:
                    results = run_worker(spec, args.in_process)
                for name, (texts, gold) in sets.items():
                    result = results[name]
                    rows.append({"run": str(run), "texts": name, "n": len(texts), "variant": variant,
                                 "gold": gold, **result})  # fmt: skip
                    print(f"# {run} {name} {variant}: {result['seconds']:.1f} s", file=sys.stderr)
    return rows


def test_split_deltas(args: argparse.Namespace) -> dict[tuple[str, str], dict[str, Any]]:
    """Each Predictor variant's accuracy change on each run's own test split, served as a user serves it
    (chunks, the run's threshold and temperature); also written to ``<run>/serving_accuracy.json``."""
    from hf_spam.serving.accuracy import measure_serving_accuracy

    out = {}
    for run in args.runs:
        for variant in args.variants:
            if variant not in ("pipeline", "torch-float32"):
                served = replace(serving_arguments(variant, args.device), long_text="chunks")
                served = replace(served, threshold=None, temperature=None)
                out[(run, variant)] = measure_serving_accuracy(run, served, args.max_test_samples)
    return out


def agreement(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def summarize(
    rows: list[dict[str, Any]], test: dict[tuple[str, str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per row: texts/s, ratio to the pipeline, agreement with it, accuracy where the classes match."""
    baseline = "pipeline" if any(r["variant"] == "pipeline" for r in rows) else rows[0]["variant"]
    reference = {(r["run"], r["texts"]): r for r in rows if r["variant"] == baseline}
    table = []
    for row in rows:
        base = reference[(row["run"], row["texts"])]
        labels, gold = row["labels"], row["gold"]
        table.append(
            {
                "run": row["run"],
                "texts": row["texts"],
                "n": row["n"],
                "variant": row["variant"],
                "seconds": round(row["seconds"], 2),
                "texts_per_s": round(row["n"] / row["seconds"], 1),
                "speedup": round(base["seconds"] / row["seconds"], 2),
                "peak_mb": round(row["peak_mb"]),
                "agreement": agreement(labels, base["labels"]),
                "accuracy": agreement(labels, gold) if set(gold) >= set(labels) else None,
                "test_delta_points": test.get((row["run"], row["variant"]), {}).get("delta_points"),
                "load_s": round(row["load_s"], 2),
            }
        )
    return table


COLUMNS = ("run", "texts", "variant", "seconds", "texts/s", "× pipeline", "peak MB",
           "same labels as pipeline", "accuracy", "test split Δ (points)")  # fmt: skip


def markdown(table: list[dict[str, Any]], header: str) -> str:
    """The table as markdown, under ``header``."""
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in table:
        run = Path(r["run"])
        cells = [
            f"{run.parent.name}/{run.name}" if run.name == "merged" else run.name,
            f"{r['texts']} ({r['n']})",
            r["variant"],
            f"{r['seconds']:.1f}",
            f"{r['texts_per_s']:.1f}",
            f"{r['speedup']:.2f}",
            str(r["peak_mb"]),
            f"{100 * r['agreement']:.2f} %",
            f"{100 * r['accuracy']:.2f} %" if r["accuracy"] is not None else "—",
            f"{r['test_delta_points']:+.2f}" if r["test_delta_points"] is not None else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (a LoRA run, a merged folder)")
    parser.add_argument("--sms", help="the SMSSpamCollection file: all its messages")
    parser.add_argument("--imdb", help="the IMDB folder: --imdb_texts reviews of its test split")
    parser.add_argument("--imdb_texts", type=int, default=2000)
    parser.add_argument("--max_texts", type=int, help="at most this many texts per set (smoke runs)")
    parser.add_argument("--variants", nargs="+", help=f"default: {CPU_VARIANTS} (on a GPU: {GPU_VARIANTS})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=16, help="the pipeline's batch size")
    parser.add_argument("--threads", type=int, help="torch (and onnxruntime) threads (default: torch's)")
    parser.add_argument("--test_accuracy", action="store_true", help="also the test split accuracy changes")
    parser.add_argument("--max_test_samples", type=int, help="--test_accuracy on a random subset")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument(
        "--in_process",
        action="store_true",
        help="no child process per variant (smoke runs; peak memory is shared)",
    )
    parser.add_argument("--output", help="write OUTPUT.md and OUTPUT.json")
    args = parser.parse_args()
    if not (args.sms or args.imdb):
        parser.error("give --sms and/or --imdb")
    args.variants = args.variants or list(GPU_VARIANTS if args.device.startswith("cuda") else CPU_VARIANTS)
    if args.threads:
        torch.set_num_threads(args.threads)
    from hf_spam.run_folder import device_description

    rows = measure(args)
    table = summarize(rows, test_split_deltas(args) if args.test_accuracy else {})
    header = (
        f"{device_description(torch.device(args.device))}; torch {torch.__version__}; pipeline batch "
        f"{args.batch_size}; Predictor defaults (max_batch_tokens 4096); {time.strftime('%Y-%m-%d')}"
    )
    text = markdown(table, header)
    print(text)
    if args.output:
        Path(args.output).with_suffix(".md").write_text(text)
        Path(args.output).with_suffix(".json").write_text(
            json.dumps({"header": header, "rows": table}, indent=2)
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        Path(sys.argv[3]).write_text(json.dumps(worker(json.loads(Path(sys.argv[2]).read_text()))))
    else:
        main()
