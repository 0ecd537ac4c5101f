"""Splits: the book's exact sizes, stratification, dedup with no text in two splits, determinism."""

from __future__ import annotations

from collections import Counter

import pytest
from datasets import DatasetDict

from hf_spam.data import load_imdb, load_sms_spam, split


@pytest.fixture(scope="module")
def sms(sms_file):
    return load_sms_spam(sms_file)


@pytest.fixture(scope="module")
def imdb(imdb_dir):
    return load_imdb(imdb_dir)


def texts_by_split(splits: DatasetDict) -> dict[str, list[str]]:
    return {name: part["text"][:] for name, part in splits.items()}


def crossing_texts(splits: DatasetDict) -> set[str]:
    """Texts found in more than one split, computed from the outputs alone."""
    where: dict[str, set[str]] = {}
    for name, texts in texts_by_split(splits).items():
        for text in texts:
            where.setdefault(text, set()).add(name)
    return {text for text, names in where.items() if len(names) > 1}


def assert_accounted(splits: DatasetDict, report, rows_in: int) -> None:
    sizes = {name: len(part) for name, part in splits.items()}
    assert report.split_sizes() == sizes
    dropped = report.rows_dropped_by_undersampling + report.rows_dropped_for_leakage
    assert rows_in == report.rows_in == sum(sizes.values()) + dropped


def test_book_split_has_the_books_exact_sizes(sms):
    splits, report = split(sms, "book", seed=123, return_report=True)
    assert {name: len(part) for name, part in splits.items()} == {
        "train": 1045,
        "validation": 149,
        "test": 300,
    }
    labels = Counter(label for part in splits.values() for label in part["label"][:])
    assert labels == {0: 747, 1: 747}  # every spam message, and as many ham ones
    assert report.rows_dropped_by_undersampling == 4827 - 747
    assert_accounted(splits, report, len(sms))


def test_book_split_with_dedup_puts_each_text_in_one_split(sms):
    plain = split(sms, "book", seed=123)
    dedup, report = split(sms, "book", seed=123, dedup=True, return_report=True)
    assert crossing_texts(plain) and not crossing_texts(dedup)
    assert report.duplicate_texts_crossing == 0
    assert report.duplicate_texts_crossing_without_dedup == len(crossing_texts(plain))
    assert sum(map(len, dedup.values())) == 1494  # the same balanced rows, regrouped
    assert_accounted(dedup, report, len(sms))


def test_stratified_split_keeps_every_row_and_the_label_ratio(sms):
    splits, report = split(sms, "stratified", seed=123, return_report=True)
    assert_accounted(splits, report, len(sms))
    assert report.rows_dropped_by_undersampling == report.rows_dropped_for_leakage == 0
    for name, fraction in zip(("train", "validation", "test"), (0.7, 0.1, 0.2), strict=True):
        labels = splits[name]["label"][:]
        assert labels.count(0) == pytest.approx(4827 * fraction, abs=2)  # int() cuts; test takes the rest
        assert labels.count(1) == pytest.approx(747 * fraction, abs=2)
        assert labels[:20] != sorted(labels[:20])  # each split is shuffled, not label-ordered
    assert sorted(t for texts in texts_by_split(splits).values() for t in texts) == sorted(sms["text"][:])


def test_stratified_reports_crossing_texts_and_dedup_removes_them(sms):
    plain, plain_report = split(sms, "stratified", seed=123, return_report=True)
    assert plain_report.duplicate_texts_crossing == len(crossing_texts(plain)) > 0
    for seed in (123, 7):
        dedup, report = split(sms, "stratified", seed=seed, dedup=True, return_report=True)
        assert not crossing_texts(dedup)
        assert_accounted(dedup, report, len(sms))
        # whole groups move: each split is off the row-level cut by less than the largest group per boundary
        largest_group = max(Counter(sms["text"][:]).values())
        plain_sizes = split(sms, "stratified", seed=seed, return_report=True)[1].split_sizes()
        for name, size in report.split_sizes().items():
            assert abs(size - plain_sizes[name]) < 2 * 2 * largest_group


def test_same_seed_same_split_different_seed_different_split(sms):
    for protocol in ("book", "stratified"):
        for dedup in (False, True):
            first = texts_by_split(split(sms, protocol, seed=123, dedup=dedup))
            assert texts_by_split(split(sms, protocol, seed=123, dedup=dedup)) == first
            other = texts_by_split(split(sms, protocol, seed=124, dedup=dedup))
            assert other["train"] != first["train"] and set(other["test"]) != set(first["test"])


def test_dataset_dict_is_concatenated_for_book_and_stratified(sms):
    halves = DatasetDict({"a": sms.select(range(3000)), "b": sms.select(range(3000, len(sms)))})
    assert texts_by_split(split(halves, "stratified")) == texts_by_split(split(sms, "stratified"))


def test_fractions_are_validated(sms):
    with pytest.raises(ValueError, match="3 fractions"):
        split(sms, "stratified", fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        split(sms, "book", fractions=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="unknown split protocol"):
        split(sms, "random")  # type: ignore[arg-type]
    custom = split(sms, "stratified", fractions=(0.8, 0.0, 0.2))
    assert len(custom["validation"]) == 0 and len(custom["train"]) + len(custom["test"]) == len(sms)


def test_official_split_keeps_test_and_carves_a_stratified_validation(imdb):
    splits, report = split(imdb, "official", seed=123, return_report=True)
    assert splits["test"]["text"][:] == imdb["test"]["text"][:]
    assert len(splits["validation"]) == 2500 and len(splits["train"]) == 22500
    assert Counter(splits["validation"]["label"][:]) == {0: 1250, 1: 1250}
    assert_accounted(splits, report, 50000)
    in_both = set(imdb["train"]["text"][:]) & set(imdb["test"]["text"][:])
    assert len(in_both) == 123  # the official data's own leak (../shared/data/SOURCES.md)
    assert report.duplicate_texts_crossing == len(crossing_texts(splits)) >= len(in_both)
    with pytest.raises(ValueError, match="DatasetDict with exactly train and test"):
        split(imdb["train"], "official")


def test_official_split_with_dedup_drops_leaking_train_rows_never_test(imdb):
    splits, report = split(imdb, "official", seed=123, dedup=True, return_report=True)
    test_texts = set(imdb["test"]["text"][:])
    leaking_train_rows = sum(text in test_texts for text in imdb["train"]["text"][:])
    assert report.rows_dropped_for_leakage == leaking_train_rows > 0
    assert splits["test"]["text"][:] == imdb["test"]["text"][:]
    assert not crossing_texts(splits)
    assert report.duplicate_texts_crossing_without_dedup > 0
    assert_accounted(splits, report, 50000)


def test_load_splits_lives_with_the_data_pipeline_and_takes_every_data_flag(tmp_path):
    import hf_spam.frozen_features.run
    import hf_spam.training.inputs
    from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args
    from hf_spam.data import load_splits
    from hf_spam.frozen_features.arguments import FeatureArguments

    assert load_splits.__module__ == "hf_spam.data.pipeline"
    assert hf_spam.training.inputs.load_splits is load_splits
    assert hf_spam.frozen_features.run.load_splits is load_splits
    path = tmp_path / "d.csv"
    rows = "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(40))
    path.write_text("text,label\n" + rows + ",a\n")  # line 42: empty text
    flags = ["--dataset", str(path), "--protocol", "stratified", "--on_bad_line", "skip"]
    flags += ["--label_names", "b", "a", "--label_map", "x=a", "--clean_text"]
    # every recipe parses the same data flags: frozen features and the fine-tuning recipes
    (_, frozen) = parse_args((FeatureArguments, DataArguments), flags)
    (_, tuned, _) = parse_args((ModelArguments, DataArguments, TrainArguments), flags)
    assert frozen == tuned and frozen.on_bad_line == "skip" and frozen.label_names == ["b", "a"]
    splits, report = load_splits(frozen, seed=0)
    assert splits["train"].features["label"].names == ["b", "a"]
    assert sum(len(part) for part in splits.values()) == 40
    assert report.load_report.files == {str(path): (41, 40, 1)}
    assert [row.line for row in report.load_report.skipped] == [42]
