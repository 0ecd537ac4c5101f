"""Studies: the statistics, the study file's validation and overrides, the same split across seeds, the
TF-IDF floor, and a tiny study end to end through recipes/compare.py (runs as processes, resume, a failed
row, the report and its plots)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import recipe
from scipy.stats import binom

from hf_spam.arguments import DataArguments
from hf_spam.data import load_splits
from hf_spam.frozen_features.arguments import FeatureArguments
from hf_spam.frozen_features.run import run_frozen_features
from hf_spam.run_folder import PREDICTIONS_FILE
from hf_spam.study import (
    StudyError,
    apply_overrides,
    bootstrap_interval,
    compare,
    load_study,
    mcnemar_exact,
    paired_bootstrap_interval,
    select,
)
from hf_spam.study.report import _device_lines
from hf_spam.study.results import RowResult, read_predictions, run_device
from hf_spam.study.runner import run_command
from hf_spam.study.stats import format_p

REPO = Path(__file__).resolve().parents[1]


# -- statistics ---------------------------------------------------------------------------------------
def test_mcnemar_exact_against_the_binomial_by_hand():
    # 1 vs 6 discordant: P(X <= 1 | n=7, 1/2) = (1 + 7) / 128, doubled
    assert mcnemar_exact(1, 6) == pytest.approx(16 / 128)
    assert mcnemar_exact(6, 1) == pytest.approx(16 / 128)
    assert mcnemar_exact(10, 25) == pytest.approx(2 * binom.cdf(10, 35, 0.5))
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 12) == pytest.approx(2 * 0.5**12)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_examples():
    rng = np.random.default_rng(0)
    widths = {}
    for n in (100, 2500):
        correct = rng.random(n) < 0.8
        low, high = bootstrap_interval(correct, resamples=1000)
        assert low <= correct.mean() <= high
        widths[n] = high - low
        normal = 2 * 1.96 * math.sqrt(correct.mean() * (1 - correct.mean()) / n)
        assert widths[n] == pytest.approx(normal, rel=0.25)  # the normal approximation's width
    assert widths[2500] < widths[100] / 3  # ~ 1 / sqrt(n): 5x narrower


def test_paired_comparison_of_identical_and_of_different_runs():
    rng = np.random.default_rng(1)
    a = rng.random((2, 300)) < 0.6
    same = compare("a", "b", a, a.copy(), seeds=[1, 2], resamples=500)
    assert same.p_value == 1.0 and same.interval == (0.0, 0.0) and not same.significant
    assert same.sentence.startswith("no significant difference") and "0.33 points" in same.sentence
    better = a | (rng.random((2, 300)) < 0.75)  # right wherever a is, and on most others
    result = compare("first", "last", a, better, seeds=[1, 2], resamples=500)
    only_a, only_b = result.per_seed[0]["only_a"], result.per_seed[0]["only_b"]
    assert only_a == 0 and only_b == int((better[0] & ~a[0]).sum())
    assert result.only_b == int((better & ~a).sum()) and result.p_value < 1e-6 and result.significant
    low, high = paired_bootstrap_interval(a, better, resamples=500)
    assert 0 < low <= result.difference <= high
    assert result.sentence.startswith(f"last beats first by {result.difference * 100:.1f} points (p < 0.001")


def test_a_small_mcnemar_p_with_an_interval_across_zero_is_not_called_real_and_the_sentence_says_why():
    # three seeds with the same discordant examples: pooled McNemar counts each seed's (6 + 18 flips), the
    # bootstrap (examples resampled, seeds averaged) sees 8 examples
    a = np.zeros((3, 300), dtype=bool)
    b = a.copy()
    b[:, :6] = True  # B right where A is wrong on 6 examples, in every seed
    a[:, 6:8] = True  # A right where B is wrong on 2
    result = compare("a", "b", a, b, seeds=[1, 2, 3], resamples=2000)
    assert (result.only_a, result.only_b) == (6, 18) and result.p_value < 0.05
    low, high = result.interval
    assert low < 0 < high and not result.significant
    assert result.sentence.startswith(
        f"no significant difference between a and b (1.3 points; McNemar pooled p = {result.p_value:.3g}"
    )
    assert (
        f"but the paired bootstrap 95 % interval of b - a {low * 100:+.1f} to {high * 100:+.1f} includes 0"
        in result.sentence
    )


def test_p_values_next_to_the_threshold_show_which_side_they_are_on():
    assert format_p(0.0497) == "p = 0.0497" and format_p(0.0503) == "p = 0.0503"
    assert format_p(0.0004) == "p < 0.001" and format_p(0.53) == "p = 0.53"


# -- the study file ------------------------------------------------------------------------------------
def write_study(path: Path, **changes) -> Path:
    study = {
        "name": "s",
        "seeds": [1],
        "shared": {"num_epochs": 1},
        "rows": [{"name": "a", "recipe": "gpt2"}, {"name": "floor", "recipe": "tfidf"}],
        "questions": [{"title": "q", "rows": ["a", "floor"]}],
    } | changes
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": 1}, r"study.yaml: unknown key\(s\) \['colour'\]"),
        ({"rows": [{"name": "a", "recipe": "gpt3"}]}, r"rows\[0\].recipe: unknown recipe 'gpt3'"),
        ({"rows": [{"name": "a", "recipe": "gpt2"}] * 2}, r"rows\[1\].name: row 'a' is named twice"),
        ({"questions": [{"title": "q", "rows": ["a", "b"]}]}, r"questions\[0\].rows: no row named \['b'\]"),
        (
            {"rows": [{"name": "a", "recipe": "tfidf", "args": {"pooling": "last"}}]},
            r"rows\[0\].args: \['pooling'\] not flag\(s\) of the tfidf recipe",
        ),
        ({"shared": {"lora_rank": 4}}, r"shared: \['lora_rank'\] not a flag of any row's recipe"),
        ({"seeds": [1, 1]}, r"seeds: a seed is listed twice"),
    ],
)
def test_a_bad_study_file_is_one_line_naming_the_file_and_field(tmp_path, changes, message):
    path = write_study(tmp_path / "study.yaml", **changes)
    with pytest.raises(StudyError, match=message) as error:
        load_study(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_overrides_go_to_rows_whose_recipe_takes_the_flag(tmp_path):
    path = write_study(tmp_path / "study.yaml", shared={"num_epochs": 2}, questions=[], rows=[
        {"name": "medium", "recipe": "gpt2", "args": {"model": "gpt2-medium", "num_epochs": 3}},
        {"name": "g", "recipe": "gpt2"},
        {"name": "enc", "recipe": "bert"},
        {"name": "floor", "recipe": "tfidf"},
    ])  # fmt: skip
    study = load_study(path)
    settings = ["bert:model=mini", "medium:learning_rate=0.0001", "medium:num_epochs=4"]
    overrides = {"model": "tiny", "data_source": "sms.txt", "num_epochs": 1}
    apply_overrides(study, overrides, settings, ["--eval_every", "0"])
    medium, g, enc, floor = (study.row(name).args for name in ("medium", "g", "enc", "floor"))
    assert g["model"] == "tiny" and enc["model"] == "mini" and "model" not in floor  # TF-IDF has no model
    assert medium["model"] == "gpt2-medium"  # what a row sets itself is what it is: kept
    assert (medium["num_epochs"], g["num_epochs"], enc["num_epochs"]) == (4, 1, 1)  # targeted: replaced
    assert medium["learning_rate"] == 1e-4 and "learning_rate" not in g
    assert {g["eval_every"], enc["eval_every"], medium["eval_every"]} == {0} and "eval_every" not in floor
    assert floor == {"method": "tfidf", "analyzer": "best", "data_source": "sms.txt"}
    assert any("kept their own value: ['medium']" in note for note in study.notes)
    command = run_command(study.row("floor"), 7, study, tmp_path / "out")
    assert command[1:3] == ["-m", "hf_spam.commands.frozen_features"]  # the installed package's recipe
    assert command[3:] == ["--method", "tfidf", "--analyzer", "best", "--data_source", "sms.txt",
                           "--output_dir", str(tmp_path / "out" / "floor"), "--run_name", "seed7",
                           "--seed", "7", "--split_seed", "123"]  # fmt: skip
    with pytest.raises(StudyError, match="--set nobody:model: no row or recipe named 'nobody'"):
        apply_overrides(study, {}, ["nobody:model=x"])
    with pytest.raises(StudyError, match="--pooling: not a flag of any row's recipe"):
        apply_overrides(load_study(write_study(tmp_path / "t.yaml", rows=[{"name": "f", "recipe": "tfidf"}],
                                               questions=[], shared={})), {"pooling": "last"})  # fmt: skip


def test_rows_keep_a_question_only_with_its_reference_row(tmp_path, caplog):
    rows = [{"name": n, "recipe": "tfidf"} for n in ("full", "lora", "ia3", "prompt")]
    questions = [{"title": "against full", "rows": ["full", "lora", "ia3", "prompt"]},
                 {"title": "against lora", "rows": ["lora", "ia3", "prompt"]}]  # fmt: skip
    study = load_study(write_study(tmp_path / "s.yaml", rows=rows, questions=questions, shared={}))
    with caplog.at_level("INFO", logger="hf_spam.study.spec"):
        select(study, ["lora", "prompt"], [7, 8])
    # "against full" is not answered against lora under its title: it is left out, and the log says so
    assert [(q.title, q.rows) for q in study.questions] == [("against lora", ["lora", "prompt"])]
    assert "'against full' left out: its reference row full is not in --rows" in caplog.text
    assert [row.name for row in study.rows] == ["lora", "prompt"] and study.seeds == [7, 8]


@pytest.mark.parametrize("name", ["seven_questions", "gpt2_vs_bert", "gpt2_vs_bert_imdb"])
def test_shipped_studies_are_valid(name):
    study = load_study(REPO / "recipes" / "studies" / f"{name}.yaml")
    assert study.questions and all(len(q.rows) > 1 for q in study.questions)
    assert any(row.recipe.name == "tfidf" for row in study.rows)
    assert any(row.recipe.name == "bert" for row in study.rows)


# -- the same split for every seed; the TF-IDF floor -----------------------------------------------------
def test_split_seed_keeps_the_split_and_subsets_while_the_seed_changes(sms_file):
    def test_texts(seed, split_seed):
        args = DataArguments(data_source=str(sms_file), max_eval_samples=40, split_seed=split_seed)
        return load_splits(args, seed)[0]["test"]["text"]

    assert test_texts(1, split_seed=5) == test_texts(2, split_seed=5)
    assert test_texts(1, split_seed=None) != test_texts(2, split_seed=None)
    assert test_texts(5, split_seed=None) == test_texts(1, split_seed=5)


def test_tfidf_best_keeps_the_analyzer_better_on_validation(sms_file, tmp_path):
    args = FeatureArguments(method="tfidf", analyzer="best", output_dir=str(tmp_path), run_name="floor")
    metrics = run_frozen_features(args, DataArguments(data_source=str(sms_file)))
    details = metrics["training"]["details"]
    by_analyzer = details["val_accuracy_by_analyzer"]
    assert set(by_analyzer) == {"word", "char"}
    assert by_analyzer[details["analyzer"]] == max(by_analyzer.values())
    assert metrics["splits"]["validation"]["accuracy"] == pytest.approx(by_analyzer[details["analyzer"]])
    labels, predicted = read_predictions(tmp_path / "floor" / PREDICTIONS_FILE)
    assert len(labels) == metrics["splits"]["test"]["n"] == 300
    assert (labels == predicted).mean() == pytest.approx(metrics["splits"]["test"]["accuracy"])


# -- a tiny study end to end ----------------------------------------------------------------------------
def test_tiny_study_end_to_end(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path, capsys):
    tiny = {"model": str(tiny_gpt2_dir), "weights": "random", "tokenizer": str(gpt2_tokenizer_dir),
            "trainable": "all", "save_model": False, "learning_rate": 1e-3}  # fmt: skip
    path = write_study(
        tmp_path / "tiny.yaml",
        name="tiny",
        seeds=[1, 2],
        shared={"max_train_samples": 8, "max_eval_samples": 12, "num_epochs": 1, "eval_every": 0},
        rows=[
            {"name": "a", "recipe": "gpt2", "args": tiny, "note": "a tiny random GPT-2"},
            {"name": "b", "recipe": "gpt2", "args": tiny},  # the same as a: the same predictions
            {"name": "broken", "recipe": "gpt2", "args": {"trainable": "everything"}},
        ],
        questions=[{"title": "identical rows", "rows": ["a", "b"]}],
    )
    compare = recipe("compare").main
    out = tmp_path / "out"
    report = compare(
        [str(path), "--data_source", str(sms_file), "--output_dir", str(out), "--resamples", "200"]
    )
    study_dir = out / "tiny"
    assert not list(study_dir.glob("*/seed*/checkpoints"))  # deleted once each run finished
    assert report["counts"] == {"ran": 4, "skipped": 0, "failed": 1, "not_run": 1}  # broken: one try
    rows = {row["name"]: row for row in json.loads((study_dir / "report.json").read_text())["rows"]}
    assert set(rows) == {"a", "b", "broken"}
    for name in ("a", "b"):
        low, high = rows[name]["test_accuracy_interval"]
        assert low <= rows[name]["metrics"]["test_accuracy"]["mean"] <= high
        assert rows[name]["seeds"] == [1, 2] and rows[name]["trainable"] == "all"
    assert rows["broken"]["seeds"] == [] and "--trainable" in rows["broken"]["failures"][0]["error"]
    (comparison,) = report["questions"][0]["comparisons"]
    assert comparison["p_value"] == 1.0 and comparison["only_a"] == comparison["only_b"] == 0
    assert comparison["n_examples"] == 12 and comparison["seeds"] == [1, 2]
    markdown = (study_dir / "report.md").read_text()
    assert all(f"| {name} |" in markdown for name in rows) and "a tiny random GPT-2" in markdown
    assert "no significant difference between a and b (0.0 points; p = 1.00" in markdown
    assert "Device: cpu: " in markdown and "(every run)" in markdown  # the runs' metrics.json
    for plot in ("accuracy_vs_time.png", "accuracy_vs_parameters.png", "validation_curves.png"):
        assert (study_dir / plot).read_bytes().startswith(b"\x89PNG")
    assert (study_dir / "report.csv").read_text().count("\n") == 4  # header + 3 rows
    # every run on the same 12 test examples; the predictions agree with metrics.json
    for run in ("a/seed1", "b/seed2"):
        labels, predicted = read_predictions(study_dir / run / PREDICTIONS_FILE)
        metrics = json.loads((study_dir / run / "metrics.json").read_text())
        assert (labels == predicted).mean() == pytest.approx(metrics["splits"]["test"]["accuracy"])
    assert np.array_equal(read_predictions(study_dir / "a/seed1" / PREDICTIONS_FILE)[0],
                          read_predictions(study_dir / "b/seed2" / PREDICTIONS_FILE)[0])  # fmt: skip

    # a second invocation skips the finished runs (and leaves them untouched)
    finished = {p: p.stat().st_mtime_ns for p in study_dir.glob("*/seed*/metrics.json")}
    assert len(finished) == 4
    again = compare([str(path), "--data_source", str(sms_file), "--output_dir", str(out), "--rows", "a", "b"])
    assert again["counts"] == {"ran": 0, "skipped": 4, "failed": 0, "not_run": 0}
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert again["questions"][0]["comparisons"][0]["p_value"] == 1.0
    assert '"skipped": 4' in capsys.readouterr().out
    # a study folder copied elsewhere is the same runs: skipped there too (--output_dir is no run setting)
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    elsewhere = compare(
        [str(path), "--data_source", str(sms_file), "--output_dir", str(moved), "--rows", "a", "b"]
    )
    assert elsewhere["counts"] == {"ran": 0, "skipped": 4, "failed": 0, "not_run": 0}
    # finished runs made with other flags are not mixed in: an error before anything runs
    changed = r"tiny/a/seed1 was finished with other arguments \(--max_eval_samples: \['12'\] -> \['10'\]\)"
    with pytest.raises(StudyError, match=changed):
        compare(
            [str(path), "--data_source", str(sms_file), "--output_dir", str(out), "--max_eval_samples", "10"]
        )


def test_an_unfinished_run_goes_on_from_its_checkpoint_when_its_flags_are_the_same(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    tiny = {"model": str(tiny_gpt2_dir), "weights": "random", "tokenizer": str(gpt2_tokenizer_dir),
            "trainable": "all", "save_model": False, "learning_rate": 1e-3}  # fmt: skip
    path = write_study(
        tmp_path / "s.yaml", shared={"max_train_samples": 8, "max_eval_samples": 12, "num_epochs": 1},
        rows=[{"name": "a", "recipe": "gpt2", "args": tiny}, {"name": "floor", "recipe": "tfidf"}],
    )  # fmt: skip
    compare = recipe("compare").main
    base = [str(path), "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--rows", "a"]
    run_dir, log = tmp_path / "s" / "a" / "seed1", tmp_path / "s" / "logs" / "a-seed1.log"

    def interrupt() -> None:  # as if killed after its last checkpoint, before metrics.json
        (run_dir / "metrics.json").unlink()
        (run_dir / PREDICTIONS_FILE).unlink()

    compare([*base, "--keep_checkpoints", "--max_eval_samples", "10"])
    interrupt()
    # started with other flags: starts over (and its checkpoints are kept when asked)
    assert compare([*base, "--keep_checkpoints"])["counts"]["ran"] == 1
    assert "--overwrite_output_dir" in log.read_text() and "resumed from" not in log.read_text()
    assert (run_dir / "checkpoints").is_dir()
    first = read_predictions(run_dir / PREDICTIONS_FILE)
    assert len(first[0]) == 12
    interrupt()
    # the same flags: goes on from the newest checkpoint, to the same predictions; then deletes them
    assert compare(base)["counts"]["ran"] == 1
    text = log.read_text()
    assert "--resume_from_checkpoint latest" in text and "resumed from" in text
    again = read_predictions(run_dir / PREDICTIONS_FILE)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not (run_dir / "checkpoints").exists() and (run_dir / "metrics.json").is_file()


STUB_RECIPE = '''
"""A stand-in recipe: crashes (a traceback, not a user error) for seed 1, else writes a run folder."""
import argparse
import csv
import json
import os
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass
class StubArguments:
    output_dir: str = "outputs"
    run_name: str = "run"
    seed: int = 0
    split_seed: int = 0
    overwrite_output_dir: bool = False
    right: int = 5
    sleep: float = 0.0


ARGUMENT_GROUPS = (StubArguments,)

if __name__ == "__main__":
    started = time.time()
    parser = argparse.ArgumentParser()
    for item in fields(StubArguments):
        parser.add_argument(f"--{item.name}", nargs="?", const="true", default=item.default)
    args = parser.parse_args()
    if args.seed == "1":
        raise RuntimeError("boom: the stub crashed")
    run = Path(args.output_dir) / args.run_name
    run.mkdir(parents=True, exist_ok=True)
    right = int(args.right)
    time.sleep(float(args.sleep))
    with (run / "test_predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", "predicted"])
        writer.writerows([i, 1, int(i < right)] for i in range(10))
    split = {"accuracy": right / 10, "f1": 0.5, "roc_auc": 0.5}
    metrics = {"model": "stub", "splits": {"train": split, "validation": split, "test": split},
               "seconds": {"training": 60.0}, "training": {"examples_per_second": 1.0},
               "parameters": {"trainable": 3}, "peak_memory": {"mb": 1.0},
               "overwrite": args.overwrite_output_dir, "split_seed": args.split_seed,
               "started": started, "ended": time.time(), "threads": os.environ.get("OMP_NUM_THREADS")}
    (run / "metrics.json").write_text(json.dumps(metrics))
'''


def test_a_crash_is_isolated_and_an_unfinished_run_is_redone(tmp_path):
    (tmp_path / "stub.py").write_text(STUB_RECIPE)
    path = write_study(tmp_path / "stub.yaml", name="stub", seeds=[1, 2, 3], shared={}, split_seed=9,
                       rows=[{"name": "five", "recipe": "stub.py"},
                             {"name": "nine", "recipe": "stub.py", "args": {"right": 9}}],
                       questions=[{"title": "nine vs five", "rows": ["five", "nine"]}])  # fmt: skip
    out = tmp_path / "out"
    (out / "stub" / "five" / "seed2").mkdir(parents=True)  # an interrupted earlier attempt
    report = recipe("compare").main([str(path), "--output_dir", str(out), "--resamples", "200"])
    assert report["counts"] == {"ran": 4, "skipped": 0, "failed": 2, "not_run": 0}  # seed 1 of each row
    runs = {(r["row"], r["seed"]): r for r in report["runs"]}
    assert runs["five", 1]["error"] == "RuntimeError: boom: the stub crashed"  # the traceback's last line
    assert runs["five", 2]["status"] == runs["five", 3]["status"] == "ran"  # the crash did not stop them
    seed2 = json.loads((out / "stub" / "five" / "seed2" / "metrics.json").read_text())
    seed3 = json.loads((out / "stub" / "five" / "seed3" / "metrics.json").read_text())
    assert seed2["overwrite"] == "true" and seed3["overwrite"] is False and seed2["split_seed"] == "9"
    (comparison,) = report["questions"][0]["comparisons"]
    assert comparison["seeds"] == [2, 3] and (comparison["only_a"], comparison["only_b"]) == (0, 8)
    assert comparison["p_value"] == pytest.approx(2 * 0.5**8)
    assert comparison["sentence"].startswith("nine beats five by 40.0 points (p = 0.0078")
    rows = {row["name"]: row for row in report["rows"]}
    assert rows["nine"]["metrics"]["training_minutes"]["mean"] == 1.0
    assert report["run_seconds"] == report["training_seconds"] == 4 * 60.0  # the four finished runs
    assert [f["seed"] for f in rows["five"]["failures"]] == [1]


def test_accelerate_launcher_for_fine_tuning_rows_only(tmp_path):
    study = load_study(write_study(tmp_path / "study.yaml"))
    gpt2 = run_command(
        study.row("a"), 3, study, tmp_path, launcher="accelerate", launch_args="--num_processes 2"
    )
    assert gpt2[:6] == [
        "accelerate",
        "launch",
        "--num_processes",
        "2",
        "-m",
        "hf_spam.commands.gpt2_classifier",
    ]
    floor = run_command(study.row("floor"), 3, study, tmp_path, launcher="accelerate")
    assert floor[0].endswith("python") or "python" in Path(floor[0]).name


def test_the_report_says_which_rows_ran_on_which_device():
    gpu = RowResult(
        "fine_tune", "gpt2", "", devices=["cuda: NVIDIA H100 80GB HBM3", "cuda: NVIDIA H100 80GB HBM3"]
    )
    cpu = RowResult("tfidf", "tfidf", "", devices=["cpu: AMD EPYC, 2 threads"])
    mixed = RowResult(
        "imdb", "gpt2", "", devices=[run_device({"device": "cuda: X", "mixed_precision": "bf16"})]
    )
    lines = _device_lines([gpu, cpu, mixed])
    assert lines[0].startswith("Devices (compare times only within one device)")
    assert "- cuda: NVIDIA H100 80GB HBM3: 2 runs (fine_tune)" in lines
    assert "- cpu: AMD EPYC, 2 threads: 1 run (tfidf)" in lines and "- cuda: X, bf16: 1 run (imdb)" in lines
    assert _device_lines([gpu]) == ["Device: cuda: NVIDIA H100 80GB HBM3 (every run).", ""]


def test_jobs_run_several_at_once_each_with_its_share_of_the_threads(tmp_path, monkeypatch):
    (tmp_path / "stub.py").write_text(STUB_RECIPE)
    path = write_study(tmp_path / "stub.yaml", name="stub", seeds=[2, 3], shared={"sleep": 1.0},
                       rows=[{"name": "five", "recipe": "stub.py"},
                             {"name": "nine", "recipe": "stub.py", "args": {"right": 9}}],
                       questions=[{"title": "nine vs five", "rows": ["five", "nine"]}])  # fmt: skip
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # the parent shares 4 cores out
    out = tmp_path / "out"
    report = recipe("compare").main([str(path), "--output_dir", str(out), "--jobs", "2", "--resamples", "50"])
    assert report["counts"] == {"ran": 4, "skipped": 0, "failed": 0, "not_run": 0}
    assert [(r["row"], r["seed"]) for r in report["runs"]] == [
        ("five", 2),
        ("five", 3),
        ("nine", 2),
        ("nine", 3),
    ]
    spans = []
    for run in sorted(out.glob("stub/*/seed*/metrics.json")):
        metrics = json.loads(run.read_text())
        assert metrics["threads"] == "2"  # 4 cores / 2 jobs
        spans.append((metrics["started"], metrics["ended"]))
    overlapping = sum(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :])
    assert overlapping >= 2  # two at a time: (1, 2) and (3, 4) at least
    with pytest.raises(ValueError, match="--jobs 0: give 1 or more"):
        recipe("compare").main([str(path), "--output_dir", str(out), "--jobs", "0"])
