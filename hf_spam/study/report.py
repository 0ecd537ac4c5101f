"""The study's report: ``report.md``, ``report.json``, ``report.csv`` and the two plots, in
``outputs/<study>/``."""

from __future__ import annotations

import csv
import logging
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..run_folder import write_json
from .curves import CURVES_PLOT, curve_lines, learning_curves, plot_learning_curves
from .plots import plot_accuracy_vs_parameters, plot_accuracy_vs_time, plot_validation_curves
from .results import METRICS, RowResult, collect
from .runner import RunRecord
from .spec import Study
from .stats import DEFAULT_RESAMPLES, Comparison, compare

logger = logging.getLogger(__name__)

DESCRIBE = ("model", "weights", "pooled", "trainable", "padding")
PERCENT = {"train_accuracy", "val_accuracy", "test_accuracy"}


def answer(study: Study, results: list[RowResult], resamples: int) -> list[dict[str, Any]]:
    """Each question's paired comparisons (each later row against the first), on the seeds both rows
    finished with predictions of the same test examples."""
    by_name = {result.name: result for result in results}
    answers = []
    for question in study.questions:
        comparisons: list[dict[str, Any]] = []
        for a, b in question.pairs():
            ra, rb = by_name[a], by_name[b]
            seeds = [s for s in study.seeds if s in ra.correct and s in rb.correct]
            unrun = [r.name for r in (ra, rb) if not r.seeds and not r.failures]
            if not seeds and unrun:
                sentence = f"not compared: {' and '.join(unrun)} not run"
                comparisons.append({"a": a, "b": b, "not_run": unrun, "sentence": sentence})
                continue
            if not seeds:
                comparisons.append(
                    {"a": a, "b": b, "sentence": f"not compared: no seed where {a} and {b} both finished"}
                )
                continue
            if any(not np.array_equal(ra.labels[s], rb.labels[s]) for s in seeds):
                comparisons.append(
                    {
                        "a": a,
                        "b": b,
                        "sentence": f"not compared: {a} and {b} were tested on different examples",
                    }
                )
                continue
            result = compare(a, b, ra.correctness(seeds), rb.correctness(seeds), seeds, resamples=resamples)
            comparisons.append(_comparison_record(result))
        answers.append({"title": question.title, "rows": question.rows, "comparisons": comparisons})
    return answers


def _comparison_record(c: Comparison) -> dict[str, Any]:
    record = asdict(c)
    record["difference"] = c.difference
    record["interval"] = list(c.interval)
    return record


def _cell(result: RowResult, key: str) -> str:
    s = result.summary(key)
    if s["mean"] is None:
        return "-"
    scale, unit = (100, " %") if key in PERCENT else (1, "")
    fmt = "{:,.0f}" if key in ("trainable_parameters", "peak_memory_mb", "examples_per_second") else "{:.2f}"
    text = fmt.format(s["mean"] * scale)
    if s["std"] is not None:
        text += " ± " + fmt.format(s["std"] * scale)
    text += unit
    if key == "test_accuracy" and result.test_interval:
        low, high = result.test_interval
        text += f" [{low * 100:.1f}, {high * 100:.1f}]"
    return text


def _table(results: list[RowResult]) -> list[str]:
    header = ["row", "model", "weights", "pooled token", "trainable", "padding", "train acc", "val acc",
              "test acc [95 % CI]", "test F1", "test ROC AUC", "training min", "examples/s",
              "trainable params", "peak memory MB", "adapter MB", "seeds"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in results:
        if not r.seeds and not r.failures:
            continue  # not run: listed under "Not run"
        if not r.seeds:
            cells = [r.name, *(["-"] * (len(header) - 2)), "0 (failed)"]
        else:
            cells = [r.name, *(r.describe.get(k, "") for k in DESCRIBE), *(_cell(r, k) for k in METRICS)]
            cells.append(f"{len(r.seeds)}")
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return lines


def _question_lines(answers: list[dict[str, Any]]) -> list[str]:
    lines, unasked = [], 0
    for item in answers:
        asked = [c for c in item["comparisons"] if "not_run" not in c]
        if not asked:
            unasked += 1
            continue
        lines += ["", f"### {item['title']}", ""]
        unrun = sorted({name for c in item["comparisons"] for name in c.get("not_run", [])})
        if unrun:
            lines.append(f"- not run, not compared: {', '.join(unrun)}")
        for c in asked:
            lines.append(f"- **{c['sentence']}**")
            if "per_seed" not in c:
                continue
            low, high = (x * 100 for x in c["interval"])
            lines.append(
                f"  {c['b']} - {c['a']}: {c['difference'] * 100:+.2f} points on {c['n_examples']} test "
                f"examples x {len(c['seeds'])} seed(s), paired bootstrap 95 % interval "
                f"[{low:+.1f}, {high:+.1f}]; "
                f"McNemar pooled: {c['only_a']} right in {c['a']} only, {c['only_b']} in {c['b']} only, "
                f"p = {c['p_value']:.3g}"
            )
            seeds = ", ".join(
                f"seed {s['seed']}: {s['only_a']}/{s['only_b']}, p = {s['p']:.3g}" for s in c["per_seed"]
            )
            lines.append(f"  per seed (only {c['a']} / only {c['b']}): {seeds}")
    if unasked:
        lines += ["", f"{unasked} question(s) not asked: a row in each was not run (see Not run)."]
    return lines


def _markdown(
    study: Study,
    results: list[RowResult],
    answers: list[dict[str, Any]],
    info: dict[str, Any],
    curves: list[str] = (),
) -> str:
    lines = [f"# Study `{study.name}`", ""]
    runs = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in info["counts"].items())
    if study.description:
        lines += [study.description, ""]
    lines += [
        f"Study file `{study.path}`; every row and seed on the split of seed {study.split_seed}; "
        f"seeds {study.seeds}. Runs: {runs}. "
        f"Time of the study's finished runs: {info['run_seconds']:,.0f} s (training, evaluation, cache "
        f"building and saving, from their metrics.json; training alone {info['training_seconds']:,.0f} s); "
        f"this invocation took {info['wall_seconds']:,.0f} s of wall-clock time (runs skipped as finished "
        "take none).",
        "",
        *_device_lines(results),
        "Mean ± standard deviation over seeds; test accuracy's interval is a 95 % percentile bootstrap over "
        "test examples, pooled over seeds. Peak memory: the run's peak resident set (CPU) or CUDA peak.",
        "",
        *_table(results),
        "",
        "![test accuracy against training time](accuracy_vs_time.png)",
        "",
        "![test accuracy against trainable parameters](accuracy_vs_parameters.png)",
        "",
        "![validation curves](validation_curves.png)",
        "",
        *([*curves, ""] if curves else []),
        "## Questions",
        "",
        "Each later row against the first, on the same test examples. A difference is called real when "
        "McNemar's exact test, pooled over seeds, gives p < 0.05 *and* the paired bootstrap 95 % interval of "
        "the accuracy difference (examples resampled, seeds averaged) excludes 0. Pooling counts an example "
        "once per seed, so the pooled p alone overstates the evidence when seeds agree.",
        *_question_lines(answers),
    ]
    notes = [_row_note(r) for r in results if r.note or r.describe]
    notes += [f"- override {n}" for n in study.notes]
    if notes:
        lines += ["", "## Notes (what stood in for what)", "", *notes]
    unrun = [r for r in results if r.not_run]
    if unrun:
        lines += ["", "## Not run", "", "Runs of the study file that were never started:", ""]
        lines += [f"- {r.name}: seed{'s' if len(r.not_run) > 1 else ''} "
                  f"{', '.join(map(str, r.not_run))}" for r in unrun]  # fmt: skip
    failed = [(r.name, f) for r in results for f in r.failures]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {name} seed {f['seed']}: {f['error']} (log: `{f['log']}`)" for name, f in failed]
    return "\n".join(lines) + "\n"


def _device_lines(results: list[RowResult]) -> list[str]:
    """Where the runs ran (from their metrics.json); with several devices, which rows ran on each."""
    devices = Counter(d for r in results for d in r.devices)
    if not devices:
        return []
    if len(devices) == 1:
        return [f"Device: {next(iter(devices))} (every run).", ""]
    lines = ["Devices (compare times only within one device):"]
    for device, n in devices.most_common():
        rows = ", ".join(r.name for r in results if device in r.devices)
        lines.append(f"- {device}: {n} run{'s' if n > 1 else ''} ({rows})")
    return [*lines, ""]


def _row_note(r: RowResult) -> str:
    """The row's note from the study file, and what actually ran (overrides may put a stand-in there)."""
    ran = f"ran: {r.describe['model']}, weights {r.describe['weights']}" if r.describe else "did not run"
    return f"- **{r.name}**: {r.note + '; ' if r.note else ''}{ran}"


def _csv(results: list[RowResult], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        stat_names = [f"{k}_{s}" for k in METRICS for s in ("mean", "std")]
        writer.writerow(["row", "recipe", *DESCRIBE, "seeds", *stat_names, "test_accuracy_ci_low",
                         "test_accuracy_ci_high", "failures", "not_run"])  # fmt: skip
        for r in results:
            stats = [r.summary(k)[s] for k in METRICS for s in ("mean", "std")]
            interval = list(r.test_interval) if r.test_interval else ["", ""]
            described = [r.describe.get(k, "") for k in DESCRIBE]
            stats = ["" if v is None else v for v in stats]
            writer.writerow([r.name, r.recipe, *described, len(r.seeds), *stats, *interval, len(r.failures),
                             len(r.not_run)])  # fmt: skip


def write_report(
    study: Study, study_dir: Path, records: list[RunRecord], wall_seconds: float = 0.0,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:  # fmt: skip
    """Read the runs, answer the questions, write report.md/.json/.csv and the plots; returns the JSON."""
    results = collect(study.rows, records, resamples)
    answers = answer(study, results, resamples)
    counts = {
        status: sum(r.status == status for r in records) for status in ("ran", "skipped", "failed", "not_run")
    }
    training = sum(v for r in results for v in r.values.get("training_minutes", []) if v is not None) * 60
    runs = sum(sum(r.run_seconds) for r in results)
    info = {"counts": counts, "training_seconds": training, "run_seconds": runs, "wall_seconds": wall_seconds}
    study_dir.mkdir(parents=True, exist_ok=True)
    plot_accuracy_vs_time(results, study_dir / "accuracy_vs_time.png", study.name)
    plot_accuracy_vs_parameters(results, study_dir / "accuracy_vs_parameters.png", study.name)
    plot_validation_curves(results, study_dir / "validation_curves.png", study.name)
    curves = learning_curves(study, results)
    if curves:
        plot_learning_curves(curves, study_dir / CURVES_PLOT, study.name)
    (study_dir / "report.md").write_text(_markdown(study, results, answers, info, curve_lines(study, curves)))
    _csv(results, study_dir / "report.csv")
    report = {
        "study": study.name, "file": str(study.path), "split_seed": study.split_seed, "seeds": study.seeds,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"), **info, "notes": study.notes,
        "rows": [_row_record(r) for r in results], "questions": answers, "learning_curves": curves,
        "runs": [asdict(r) | {"run_dir": str(r.run_dir), "log": str(r.log)} for r in records],
    }  # fmt: skip
    write_json(study_dir / "report.json", report)
    logger.info("report: %s", study_dir / "report.md")
    return report


def _row_record(r: RowResult) -> dict[str, Any]:
    return {
        "name": r.name, "recipe": r.recipe, "note": r.note, **r.describe, "seeds": r.seeds,
        "metrics": {k: r.summary(k) | {"values": r.values.get(k, [])} for k in METRICS},
        "test_accuracy_interval": list(r.test_interval) if r.test_interval else None,
        "failures": r.failures, "not_run": r.not_run, "devices": r.devices,
    }  # fmt: skip
