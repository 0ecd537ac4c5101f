"""Labels checked before training: case/space variants, integral floats, id gaps, a single class,
empty splits and splits lacking a class -- all errors raised by the data step, before any model."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from accelerate.state import AcceleratorState
from datasets import ClassLabel, Dataset

from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.data import (
    load_dataset_by_name,
    load_sms_spam,
    load_splits,
    load_text_file,
    parse_label_map,
    split,
)
from hf_spam.errors import DataError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_SPAM_CACHE", str(tmp_path / "cache"))


def write_csv(path, rows: list[tuple[str, str]]) -> str:
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows))
    return str(path)


def variants_file(tmp_path, scale: int = 1) -> str:
    labels = (["spam"] * 3 + ["Spam"] * 2 + ["spam "] + ["ham"] * 4) * scale
    return write_csv(tmp_path / "v.csv", [(f"message {i}", label) for i, label in enumerate(labels)])


# --- labels differing only by case or surrounding whitespace -------------------------------------


def test_case_and_space_variants_are_an_error_naming_each_with_its_count(tmp_path):
    path = variants_file(tmp_path)
    with pytest.raises(DataError) as info:
        load_text_file(path, on_bad_line="skip")  # not a bad line: skipping would drop a class silently
    message = str(info.value)
    assert message.startswith(f"{path}: labels that differ only by case or surrounding whitespace")
    assert f"'spam' (3 rows, first at {path}, line 2)" in message
    assert f"'Spam' (2 rows, first at {path}, line 5)" in message
    assert f"'spam ' (1 row, first at {path}, line 7)" in message
    assert "--label_map 'Spam=spam,spam =spam'" in message


def test_label_map_or_label_names_resolve_the_variants(tmp_path, caplog):
    path = variants_file(tmp_path)
    suggested = "Spam=spam,spam =spam"  # what the error message says to pass
    mapped = load_text_file(path, label_map=suggested)
    assert mapped.features["label"].names == ["ham", "spam"]
    assert mapped["label"][:] == [1] * 6 + [0] * 4
    with caplog.at_level(logging.WARNING):
        named = load_text_file(path, label_names=["ham", "spam"])
    assert named["label"][:] == mapped["label"][:]
    assert "read label 'Spam' (2 rows) as the declared class 'spam'" in caplog.text
    # a YAML mapping works too, and a map key that matches nothing is reported
    with caplog.at_level(logging.WARNING):
        ds = load_text_file(path, label_map={"Spam": "spam", "spam ": "spam", "SPAM": "spam"})
    assert ds["label"][:] == mapped["label"][:] and "'SPAM' matches no label" in caplog.text


def test_label_map_parsing_and_errors():
    assert parse_label_map("Spam=spam,spam =spam") == {"Spam": "spam", "spam ": "spam"}
    assert parse_label_map({"1": "pos"}) == {"1": "pos"}
    assert parse_label_map(None) == {}
    for bad, reason in (("Spam", "is not RAW=NAME"), ("a=b,a=c", "mapped twice"), ("a= ", "empty")):
        with pytest.raises(ValueError, match=reason):
            parse_label_map(bad)


def test_label_flags_from_the_command_line_and_yaml(tmp_path):
    path = variants_file(tmp_path, scale=10)
    (args,) = parse_args((DataArguments,), ["--dataset", path, "--label_map", "Spam=spam,spam =spam"])
    assert args.label_map == "Spam=spam,spam =spam" and args.on_bad_line == "error"
    config = tmp_path / "run.yaml"
    mapping = "label_map:\n  'Spam': spam\n  'spam ': spam\n"
    config.write_text(f"dataset: {path}\n{mapping}on_bad_line: skip\nprotocol: stratified\n")
    (args,) = parse_args((DataArguments,), [str(config)])
    assert args.label_map == {"Spam": "spam", "spam ": "spam"} and args.on_bad_line == "skip"
    splits, _ = load_splits(args, seed=0)
    assert splits["train"].features["label"].names == ["ham", "spam"]
    with pytest.raises(ValueError, match="is not RAW=NAME"):
        DataArguments(dataset=path, label_map="Spam")  # checked before anything loads
    with pytest.raises(ValueError, match="--label_names is for file datasets"):
        DataArguments(dataset="sms_spam", label_names=["a", "b"])


def test_sms_labels_differing_by_case_are_read_as_the_fixed_classes(tmp_path, caplog):
    path = tmp_path / "SMSSpamCollection"
    path.write_text("ham\thello\nSpam\tWIN now\nspam\tfree prize\n")
    with caplog.at_level(logging.WARNING):
        ds = load_sms_spam(path)
    assert ds["label"][:] == [0, 1, 1] and "'Spam' (1 row) as the declared class 'spam'" in caplog.text


# --- numbers --------------------------------------------------------------------------------------


def test_integral_float_labels_are_integers_in_csv_jsonl_and_parquet(tmp_path):
    csv_path = write_csv(tmp_path / "f.csv", [("a", "0.0"), ("b", "1.0"), ("c", "1")])
    jsonl_path = tmp_path / "f.jsonl"
    jsonl_path.write_text(
        "".join(json.dumps({"text": t, "label": v}) + "\n" for t, v in [("a", 0.0), ("b", 1.0)])
    )
    parquet_path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": pa.array([0.0, 1.0], pa.float64())}), parquet_path)
    for path, ids in ((csv_path, [0, 1, 1]), (jsonl_path, [0, 1]), (parquet_path, [0, 1])):
        ds = load_text_file(path)
        assert ds.features["label"].names == ["0", "1"] and ds["label"][:] == ids, path
    assert load_text_file(csv_path, label_names=["ham", "spam"]).features["label"].names == ["ham", "spam"]


def test_a_non_integral_number_is_a_bad_line(tmp_path):
    path = write_csv(tmp_path / "f.csv", [("a", "0"), ("b", "1"), ("c", "0.5"), ("d", "1.0")])
    with pytest.raises(DataError, match=r"f.csv, line 4: label '0.5' is not a whole number"):
        load_text_file(path)
    ds, report = load_text_file(path, on_bad_line="skip", return_report=True)
    assert ds["label"][:] == [0, 1, 1] and report.skipped_lines == [4]


# --- classes and splits, checked before the model loads -----------------------------------------


def args_for(path: str, **kwargs) -> DataArguments:
    return DataArguments(dataset=path, protocol=kwargs.pop("protocol", "stratified"), **kwargs)


def test_label_ids_with_gaps_are_an_error(tmp_path):
    rows = [(f"t{i}", str(label)) for i, label in enumerate([0, 2] * 20)]
    path = write_csv(tmp_path / "gaps.csv", rows)
    with pytest.raises(
        DataError, match=r"gaps.csv: label ids with gaps: no rows with id 1 \(ids present: '0', '2'\)"
    ):
        load_splits(args_for(path), seed=0)
    splits, _ = load_splits(args_for(path, label_map="2=1"), seed=0)  # the fix the message suggests
    assert splits["train"].features["label"].names == ["0", "1"]


def test_a_declared_class_without_rows_is_an_error(tmp_path):
    path = write_csv(tmp_path / "d.csv", [(f"t{i}", "ab"[i % 2]) for i in range(40)])
    with pytest.raises(DataError, match=r"declared class 'c' has no rows \(classes with rows: 'a', 'b'\)"):
        load_splits(args_for(path, label_names=["a", "b", "c"]), seed=0)


def test_a_single_class_is_an_error(tmp_path):
    path = write_csv(tmp_path / "one.csv", [(f"t{i}", "spam") for i in range(40)])
    with pytest.raises(DataError, match=r"one.csv: a single class: all 40 rows are 'spam'"):
        load_splits(args_for(path), seed=0)


def test_a_split_left_with_no_rows_is_an_error(tmp_path):
    path = write_csv(tmp_path / "few.csv", [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")])
    with pytest.raises(DataError, match=r"few.csv: split 'validation': no rows"):
        load_splits(args_for(path), seed=0)


def test_a_split_lacking_a_class_is_an_error(tmp_path):
    rows = [(f"a{i}", "a") for i in range(20)] + [(f"b{i}", "b") for i in range(20)]
    path = write_csv(tmp_path / "rare.csv", [*rows, ("c0", "c"), ("c1", "c"), ("c2", "c")])
    with pytest.raises(DataError, match=r"rare.csv: split 'validation': no rows of class 'c'"):
        load_splits(args_for(path), seed=0)
    # also when the library's split is called directly, and after a --max_eval_samples cut
    data = Dataset.from_dict({"text": [f"t{i}" for i in range(43)], "label": [0] * 20 + [1] * 20 + [2] * 3})
    data = data.cast_column("label", ClassLabel(names=["a", "b", "c"]))
    with pytest.raises(DataError, match="split 'validation': no rows of class 'c'"):
        split(data, "stratified")
    path = write_csv(tmp_path / "ab.csv", rows)
    with pytest.raises(DataError, match=r"split '(validation|test)': no rows of class '(a|b)'"):
        load_splits(args_for(path, max_eval_samples=1), seed=0)


def test_bad_labels_stop_a_run_before_the_model_loads(tmp_path, gpt2_tokenizer_dir, sms_file):
    rows = [(f"t{i}", str(label)) for i, label in enumerate([0, 2] * 20)]
    path = write_csv(tmp_path / "gaps.csv", rows)
    no_model = str(tmp_path / "no_such_model")  # loading it would fail
    model_args = ModelArguments(
        model=no_model, implementation="transformers", tokenizer=str(gpt2_tokenizer_dir)
    )
    train_args = TrainArguments(output_dir=str(tmp_path / "out"), run_name="r")
    from hf_spam.training.fine_tune import run_classification

    try:
        with pytest.raises(DataError, match="label ids with gaps"):
            run_classification(model_args, args_for(path), train_args)
        AcceleratorState._reset_state(reset_partial_state=True)
        # with good data the same run gets as far as the model, and fails there: the data step came first
        with pytest.raises(Exception) as info:
            run_classification(model_args, DataArguments(data_source=str(sms_file)), train_args)
        assert not isinstance(info.value, DataError)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def test_load_dataset_by_name_passes_label_options(tmp_path):
    path = variants_file(tmp_path)
    ds = load_dataset_by_name(path, label_map="Spam=spam,spam =spam")
    assert ds.features["label"].names == ["ham", "spam"]
