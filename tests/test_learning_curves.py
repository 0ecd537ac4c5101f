"""Learning curves: ``--train_size`` subsets are balanced, nested, drawn per seed, with validation and test
the same at every size; ``--min_steps`` for small training sets; ``compare.py --train_sizes`` runs every
row at every size and reports a table and a plot; the label_budget study's rows are valid."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from accelerate.state import AcceleratorState
from helpers import recipe

from hf_spam.arguments import DataArguments, TrainArguments
from hf_spam.data import balanced_subset, load_splits
from hf_spam.errors import StudyError
from hf_spam.study import load_study
from hf_spam.study.curves import expand_train_sizes
from hf_spam.study.spec import BUILTIN
from hf_spam.training.inputs import passes_per_epoch

REPO = Path(__file__).resolve().parents[1]
SIZES = (8, 16, 32, 64, 256)


def splits_at(sms_file: Path, size: int | None, seed: int):
    return load_splits(DataArguments(data_source=str(sms_file), train_size=size, split_seed=123), seed)[0]


def test_a_subset_is_balanced_nested_in_the_next_size_and_the_same_for_a_seed(sms_file):
    full = splits_at(sms_file, None, seed=1)
    subsets = {n: splits_at(sms_file, n, seed=1) for n in SIZES}
    for n in SIZES:
        train = subsets[n]["train"]
        assert len(train) == n and Counter(train["label"]) == {0: n // 2, 1: n // 2}
        for name in ("validation", "test"):  # the same split at every size
            assert subsets[n][name]["text"] == full[name]["text"]
    for small, large in itertools.pairwise(SIZES):
        assert subsets[large]["train"]["text"][:small] == subsets[small]["train"]["text"]  # a prefix: nested
    assert set(subsets[256]["train"]["text"]) <= set(full["train"]["text"])
    assert splits_at(sms_file, 16, seed=1)["train"]["text"] == subsets[16]["train"]["text"]  # the same seed
    other = splits_at(sms_file, 16, seed=2)
    assert other["train"]["text"] != subsets[16]["train"]["text"]  # another seed, other labelled rows
    assert other["test"]["text"] == full["test"]["text"]  # ... and still the same test split
    assert splits_at(sms_file, 5000, seed=1)["train"]["text"] == full["train"]["text"]  # more than there are
    with pytest.raises(ValueError, match="--train_size must be a positive integer"):
        DataArguments(train_size=0)


def test_a_subset_of_unbalanced_classes_takes_what_the_minority_has(sms_file):
    splits = load_splits(DataArguments(data_source=str(sms_file), protocol="stratified"), seed=3)[0]
    train = splits["train"]
    spam = sum(train["label"])
    subset = balanced_subset(train, 2 * spam + 10, seed=3)  # every spam row, then ham only
    assert Counter(subset["label"]) == {1: spam, 0: spam + 10}


def test_min_steps_passes_over_a_small_training_set_several_times():
    args = TrainArguments(batch_size=8, num_epochs=5, min_steps=100)
    assert passes_per_epoch(8, args) == 20  # 1 step per pass x 5 epochs: 20 passes make 100 steps
    assert passes_per_epoch(64, args) == 3  # 8 x 5 = 40 < 100; 3 passes: 24 x 5 = 120
    assert passes_per_epoch(256, args) == 1  # 32 x 5 = 160 already
    assert passes_per_epoch(8, TrainArguments(batch_size=8)) == 1  # no --min_steps: one pass
    assert passes_per_epoch(32, TrainArguments(batch_size=8, num_epochs=1, min_steps=8), num_processes=2) == 4


def test_fine_tuning_at_a_train_size_takes_at_least_min_steps(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    metrics = recipe("gpt2_classifier").main([
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--run_name", "small",
        "--train_size", "8", "--max_eval_samples", "10", "--batch_size", "8", "--num_epochs", "2",
        "--min_steps", "6", "--eval_every", "0", "--save_model", "false",
    ])  # fmt: skip
    AcceleratorState._reset_state(reset_partial_state=True)
    assert metrics["split_sizes"]["train"] == 8 and metrics["split_sizes"]["test"] == 10
    details = metrics["training"]["details"]
    assert details["passes_per_epoch"] == 3 and details["optimizer_steps"] == 6  # 2 epochs x 3 passes x 1
    assert metrics["training"]["examples"] == 48


def write_study(path: Path, **changes) -> Path:
    study = {"name": "curve", "seeds": [1], "rows": [{"name": "floor", "recipe": "tfidf"}]} | changes
    path.write_text(yaml.safe_dump(study))
    return path


def test_expanding_a_study_gives_every_row_and_question_at_every_size(tmp_path):
    path = write_study(
        tmp_path / "s.yaml", train_sizes=[8, "all"],
        rows=[{"name": "floor", "recipe": "tfidf"}, {"name": "lr", "recipe": "frozen_features"}],
        questions=[{"title": "lr vs floor", "rows": ["floor", "lr"]}],
    )  # fmt: skip
    study = load_study(path)
    assert study.train_sizes == [8, None]
    expand_train_sizes(study)
    assert [row.name for row in study.rows] == ["floor@8", "floor@all", "lr@8", "lr@all"]
    assert study.row("floor@8").args["train_size"] == 8 and "train_size" not in study.row("lr@all").args
    assert (study.row("lr@8").base, study.row("lr@8").train_size) == ("lr", 8)
    assert [(q.title, q.rows) for q in study.questions] == [
        ("lr vs floor (8 labelled examples)", ["floor@8", "lr@8"]),
        ("lr vs floor (all labelled examples)", ["floor@all", "lr@all"]),
    ]
    rows = [{"name": "f", "recipe": "tfidf", "args": {"train_size": 4}}]
    pinned = load_study(write_study(tmp_path / "p.yaml", train_sizes=[8], rows=rows))
    with pytest.raises(StudyError, match="row f sets train_size itself"):
        expand_train_sizes(pinned)
    with pytest.raises(StudyError, match=r"train_sizes: 'some' is not a number of training examples"):
        load_study(write_study(tmp_path / "b.yaml", train_sizes=[8, "some"]))


def test_label_budget_study_is_valid(tmp_path):
    raw = yaml.safe_load((REPO / "recipes" / "studies" / "label_budget.yaml").read_text())
    assert raw["train_sizes"] == [8, 16, 32, 64, 256, "all"]
    names = {row["name"] for row in raw["rows"]}
    assert {"zero_shot", "kshot_random", "kshot_knn", "knn", "frozen_lr", "tfidf", "head_only", "last_block",
            "lora", "full_finetune"} == names  # fmt: skip
    # the prompting rows need the in_context recipe; the others are checked whether or not it is installed
    kept = [row for row in raw["rows"] if row["recipe"] in BUILTIN]
    assert len(kept) >= 7
    names = {row["name"] for row in kept}
    questions = [q | {"rows": [r for r in q["rows"] if r in names]} for q in raw["questions"]]
    path = tmp_path / "label_budget.yaml"
    path.write_text(
        yaml.safe_dump(raw | {"rows": kept, "questions": [q for q in questions if len(q["rows"]) > 1]})
    )
    study = load_study(path)
    assert study.row("knn").args["method"] == "knn" and study.row("lora").args["trainable"] == "lora"
    assert study.row("head_only").args["min_steps"] == 100 and "min_steps" not in study.row("knn").args
    expand_train_sizes(study)
    assert len(study.rows) == 6 * len(kept)


@pytest.mark.slow
def test_compare_runs_a_learning_curve_and_reports_it(sms_file, tmp_path):
    path = write_study(tmp_path / "curve.yaml", rows=[
        {"name": "floor", "recipe": "tfidf", "args": {"analyzer": "word"}},
        {"name": "bow", "recipe": "frozen_features", "args": {"method": "bow"}},
    ], questions=[{"title": "bow vs tfidf", "rows": ["floor", "bow"]}])  # fmt: skip
    out = tmp_path / "out"
    report = recipe("compare").main([
        str(path), "--data_source", str(sms_file), "--output_dir", str(out), "--train_sizes", "16", "all",
        "--max_eval_samples", "60", "--resamples", "100",
    ])  # fmt: skip
    assert report["counts"] == {"ran": 4, "skipped": 0, "failed": 0, "not_run": 0}
    study_dir = out / "curve"
    metrics = json.loads((study_dir / "floor@16" / "seed1" / "metrics.json").read_text())
    assert metrics["split_sizes"] == {"train": 16, "validation": 60, "test": 60}
    curves = report["learning_curves"]
    assert list(curves) == ["floor", "bow"] and [p["size"] for p in curves["floor"]] == ["16", "all"]
    assert [p["examples"] for p in curves["floor"]] == [16, 1045] and curves["floor"][0]["seeds"] == 1
    low, high = curves["floor"][1]["interval"]
    assert low <= curves["floor"][1]["mean"] <= high
    markdown = (study_dir / "report.md").read_text()
    assert "## Learning curves" in markdown and "| row | 16 | all |" in markdown and "| floor | " in markdown
    assert "bow vs tfidf (16 labelled examples)" in markdown
    assert (study_dir / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    # a trimmed study reported whole: the runs never started are "not run" (not failures), left out of the
    # tables and questions, listed once; a cell with fewer seeds than the study's says how many
    trimmed = recipe("compare").main([
        str(path), "--data_source", str(sms_file), "--output_dir", str(out),
        "--train_sizes", "8", "16", "all", "--seeds", "1", "2",
        "--max_eval_samples", "60", "--resamples", "100", "--report_only",
    ])  # fmt: skip
    assert trimmed["counts"] == {"ran": 0, "skipped": 4, "failed": 0, "not_run": 8}
    rows = {row["name"]: row for row in trimmed["rows"]}
    assert rows["floor@8"]["not_run"] == [1, 2] and rows["floor@8"]["failures"] == []
    assert rows["floor@16"]["not_run"] == [2] and rows["floor@16"]["seeds"] == [1]
    markdown = (study_dir / "report.md").read_text()
    assert "## Failed runs" not in markdown and "| floor@8 |" not in markdown and "| floor@16 |" in markdown
    assert "## Not run" in markdown and "- floor@8: seeds 1, 2" in markdown
    assert "- bow@all: seed 2" in markdown
    assert "(8 labelled examples)" not in markdown and "1 question(s) not asked" in markdown
    floor_curve = next(line for line in markdown.splitlines() if line.startswith("| floor | "))
    assert floor_curve.split(" | ")[1] == "-" and floor_curve.count("(1 seed)") == 2
