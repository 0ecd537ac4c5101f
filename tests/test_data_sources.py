"""Loaders: exact counts from the real files, every bad-input case with its line, skip reports."""

from __future__ import annotations

import csv
import json
import logging
import zipfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hf_spam.arguments import DataArguments, parse_args
from hf_spam.data import (
    clean_text,
    dataset_label,
    load_dataset_by_name,
    load_imdb,
    load_sms_spam,
    load_splits,
    load_text_file,
)
from hf_spam.data.sources import SMS_SHA256
from hf_spam.errors import DataError
from hf_spam.hub import OfflineError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_SPAM_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def imdb(imdb_dir):
    return load_imdb(imdb_dir)


def write_lines(path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


# --- SMS Spam Collection -----------------------------------------------------------------------


def test_sms_counts_from_the_real_file(sms_file):
    ds, report = load_sms_spam(sms_file, return_report=True)
    assert len(ds) == 5574
    assert ds.features["label"].names == ["ham", "spam"]
    labels = ds["label"][:]
    assert labels.count(0) == 4827 and labels.count(1) == 747
    assert (report.rows_read, report.rows_kept, report.skipped) == (5574, 5574, [])
    first_line = sms_file.read_text(encoding="utf-8").split("\n")[0]
    assert ds[0]["text"] == first_line.split("\t", 1)[1]  # text kept byte for byte


def test_pandas_default_quoting_loses_two_messages_we_do_not(sms_file):
    naive = pd.read_csv(sms_file, sep="\t", header=None, names=["label", "text"])
    exact = pd.read_csv(sms_file, sep="\t", header=None, names=["label", "text"], quoting=csv.QUOTE_NONE)
    assert len(naive) == 5572 and (naive["label"] == "ham").sum() == 4825
    assert len(exact) == len(load_sms_spam(sms_file)) == 5574


def test_sms_folder_source_means_the_file_inside(sms_file):
    assert load_sms_spam(sms_file.parent)["text"][:] == load_sms_spam(sms_file)["text"][:]


def test_sms_zip_url_is_downloaded_cached_and_checked(sms_file, tmp_path):
    archive = tmp_path / "sms.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(sms_file, "SMSSpamCollection")
    assert len(load_sms_spam(archive.as_uri())) == 5574
    cached = tmp_path / "cache" / "sms_spam" / "SMSSpamCollection"
    assert cached.is_file()
    archive.unlink()  # the second load must come from the cache
    assert len(load_sms_spam(archive.as_uri())) == 5574


def test_sms_download_with_wrong_checksum_names_both_hashes(sms_file, tmp_path):
    archive = tmp_path / "edited.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("SMSSpamCollection", sms_file.read_bytes() + b"ham\textra line\n")
    with pytest.raises(ValueError, match="sha256 mismatch") as info:
        load_sms_spam(archive.as_uri())
    assert SMS_SHA256 in str(info.value)
    assert str(info.value).count("expected") == 1 and "got " in str(info.value)


def test_sms_default_download_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="shared/data/sms_spam"):
        load_sms_spam()


def test_edited_local_sms_file_is_only_logged(tmp_path, caplog):
    path = write_lines(tmp_path / "sms.txt", [b"ham\thello", b"spam\tWIN now"])
    with caplog.at_level(logging.INFO, logger="hf_spam.data.sources"):
        ds = load_sms_spam(path)
    assert ds["text"][:] == ["hello", "WIN now"] and ds["label"][:] == [0, 1]
    assert "differs from the official" in caplog.text


BAD_SMS_LINES = [
    (b"ham no tab here", "no tab"),
    (b"spammy\tunknown label", "unknown label 'spammy'"),
    (b"ham\t   ", "empty text"),
    (b"ham\tcaf\xe9 latin-1", "not UTF-8"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_SMS_LINES)
def test_sms_bad_line_error_names_file_and_line(tmp_path, bad, reason):
    path = write_lines(tmp_path / "SMSSpamCollection", [b"ham\tfine", b"spam\talso fine", bad, b"ham\tok"])
    with pytest.raises(DataError, match=reason) as info:
        load_sms_spam(path)
    assert f"{path}, line 3:" in str(info.value)
    assert info.value.line == 3 and info.value.file == path


def test_sms_skip_reports_every_bad_line(tmp_path, caplog):
    lines = [b"ham\tgood 1"]
    for bad, _ in BAD_SMS_LINES:
        lines += [bad, b"spam\tgood"]
    path = write_lines(tmp_path / "SMSSpamCollection", lines)
    with caplog.at_level(logging.WARNING):
        ds, report = load_sms_spam(path, on_bad_line="skip", return_report=True)
    assert report.skipped_lines == [2, 4, 6, 8]
    assert report.rows_read == 9 == report.rows_kept + len(report.skipped)
    assert len(ds) == report.rows_kept == 5
    for row, (_, reason) in zip(report.skipped, BAD_SMS_LINES, strict=True):
        assert reason in row.reason and f"line {row.line}" in caplog.text


def test_trailing_blank_lines_are_not_rows_but_inner_ones_are_bad(tmp_path):
    path = tmp_path / "sms"
    path.write_bytes(b"ham\tone\r\nspam\ttwo\r\n\n  \n")  # CRLF, then blank lines at the end
    ds, report = load_sms_spam(path, return_report=True)
    assert ds["text"][:] == ["one", "two"] and report.rows_read == 2
    path.write_bytes(b"ham\tone\n\nspam\ttwo\n")
    with pytest.raises(DataError, match="line 2: no tab"):
        load_sms_spam(path)


def test_clean_text_examples():
    assert clean_text("Great film.<br /><br />Loved it") == "Great film. Loved it"
    assert clean_text("Call me &lt;#&gt; mins &amp; more") == "Call me <#> mins & more"
    assert clean_text("  a\t\n b  <BR>c<br/>") == "a b c"
    kept = "Keep CASE, <b>tags</b> & URLs http://x.y"
    assert clean_text(kept) == kept


def test_clean_is_off_by_default_and_an_empty_result_is_a_bad_row(sms_file, tmp_path):
    raw, cleaned = load_sms_spam(sms_file), load_sms_spam(sms_file, clean=True)
    assert len(raw) == len(cleaned)
    changed = [i for i, (a, b) in enumerate(zip(raw["text"][:], cleaned["text"][:], strict=True)) if a != b]
    assert changed and any("&lt;" in raw[i]["text"] for i in changed)
    path = write_lines(tmp_path / "sms", [b"ham\tfine", b"ham\t<br />"])
    assert len(load_sms_spam(path)) == 2
    with pytest.raises(DataError, match="line 2: empty text after clean_text"):
        load_sms_spam(path, clean=True)


# --- IMDB --------------------------------------------------------------------------------------


def test_imdb_official_counts_from_the_real_files(imdb):
    assert set(imdb) == {"train", "test"}
    for split in ("train", "test"):
        labels = imdb[split]["label"][:]
        assert len(labels) == 25000 and labels.count(0) == labels.count(1) == 12500
        assert imdb[split].features["label"].names == ["neg", "pos"]
        assert imdb[split].column_names == ["text", "label"]


def test_imdb_hub_default_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="shared/data/imdb"):
        load_imdb()


def make_acl_imdb(root, bad: bytes | None = None):
    """A tiny aclImdb tree: 3 reviews per split and label, optionally one bad file."""
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            folder = root / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i in (10, 2, 0):  # numeric order 0, 2, 10 is the order read
                (folder / f"{i}_{7 if label == 'pos' else 3}.txt").write_text(f"{split} {label} {i}<br />x")
    (root / "aclImdb" / "train" / "unsup").mkdir()  # unlabelled: not read
    if bad is not None:
        (root / "aclImdb" / "test" / "pos" / "99_9.txt").write_bytes(bad)


def test_acl_imdb_tree(tmp_path):
    make_acl_imdb(tmp_path)
    imdb = load_imdb(tmp_path)
    assert imdb["train"]["text"][:3] == [f"train neg {i}<br />x" for i in (0, 2, 10)]
    assert imdb["test"]["label"][:] == [0, 0, 0, 1, 1, 1]
    assert load_imdb(tmp_path, clean=True)["test"][0]["text"] == "test neg 0 x"


def test_acl_imdb_bad_file_is_named_or_skipped(tmp_path):
    make_acl_imdb(tmp_path, bad=b"first line ok\nsecond \xff line")
    bad = tmp_path / "aclImdb" / "test" / "pos" / "99_9.txt"
    with pytest.raises(DataError, match="not UTF-8") as info:
        load_imdb(tmp_path)
    assert str(info.value).startswith(f"{bad}, line 2:")
    imdb, report = load_imdb(tmp_path, on_bad_line="skip", return_report=True)
    assert [(row.file, row.line) for row in report.skipped] == [(str(bad), 2)]
    assert report.rows_read == 13 and report.rows_kept == 12 == sum(map(len, imdb.values()))


def test_imdb_folder_of_jsonl_and_csv_files(tmp_path):
    rows = [{"text": "good film", "label": "pos"}, {"text": "bad film", "label": "neg"}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    (tmp_path / "test.csv").write_text('text,label\n"great, really",1\nawful,0\n')
    imdb = load_imdb(tmp_path)
    assert imdb["train"]["label"][:] == [1, 0] and imdb["test"]["label"][:] == [1, 0]
    assert imdb["test"][0]["text"] == "great, really"
    (tmp_path / "test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no 'test' data"):
        load_imdb(tmp_path)


# --- any text/label file -----------------------------------------------------------------------


def test_csv_line_numbers_survive_multiline_quoted_fields(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b'text,label\n"two\nline text",spam\n"say ""hi""",ham\n,ham\nlast,spam\n')
    with pytest.raises(DataError, match=r"line 5: empty text"):
        load_text_file(path)
    ds, report = load_text_file(path, on_bad_line="skip", return_report=True)
    assert ds["text"][:] == ["two\nline text", 'say "hi"', "last"]
    assert ds.features["label"].names == ["ham", "spam"] and ds["label"][:] == [1, 0, 1]
    assert report.skipped_lines == [5] and report.rows_read == 4


def test_tsv_is_unquoted_and_labels_follow_the_given_order(tmp_path):
    path = write_lines(
        tmp_path / "d.tsv", [b"label\ttext", b'spam\t"quoted" start', b"ham\tplain", b"eggs\tx"]
    )
    with pytest.raises(DataError, match="line 4: unknown label 'eggs'"):
        load_text_file(path, label_names=["spam", "ham"])
    ds = load_text_file(path, label_names=["spam", "ham"], on_bad_line="skip")
    assert ds.features["label"].names == ["spam", "ham"] and ds["label"][:] == [0, 1]
    assert ds[0]["text"] == '"quoted" start'


def test_integer_labels_become_class_ids(tmp_path):
    path = write_lines(tmp_path / "d.csv", [b"text,label", b"a,0", b"b,2", b"c,1"])
    ds = load_text_file(path)
    assert ds.features["label"].names == ["0", "1", "2"] and ds["label"][:] == [0, 2, 1]
    with pytest.raises(DataError, match="line 3: label id 2 out of range"):
        load_text_file(path, label_names=["neg", "pos"])


def test_jsonl_bad_lines(tmp_path):
    lines = [
        b'{"text": "ok", "label": "a"}',
        b"{not json",
        b'{"text": "no label"}',
        b'{"text": "\xff", "label": "a"}',
    ]
    path = write_lines(tmp_path / "d.jsonl", lines)
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_text_file(path)
    ds, report = load_text_file(path, on_bad_line="skip", return_report=True)
    assert len(ds) == 1 and report.skipped_lines == [2, 3, 4]
    assert "missing column 'label'" in report.skipped[1].reason and "not UTF-8" in report.skipped[2].reason


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_missing_column_names_the_column_and_the_columns_there(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    table = pa.table({"body": ["hello"], "label": ["x"]})
    if suffix == ".parquet":
        pq.write_table(table, path)
    elif suffix == ".jsonl":
        path.write_text('{"body": "hello", "label": "x"}\n')
    else:
        sep = "," if suffix == ".csv" else "\t"
        path.write_text(f"body{sep}label\nhello{sep}x\n")
    columns = r"missing column 'text'; the columns are \[.*'body'.*'label'"
    with pytest.raises(DataError, match=columns) as info:
        load_text_file(path, on_bad_line="skip")
    assert info.value.column == "text" and str(path) in str(info.value)
    assert len(load_text_file(path, text_column="body")) == 1


def test_parquet_bad_rows_are_numbered(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c", ""], "label": [1, 0, None, 1]}), path)
    with pytest.raises(DataError, match=r"row 2: missing text"):
        load_text_file(path)
    ds, report = load_text_file(path, on_bad_line="skip", return_report=True)
    assert ds["text"][:] == ["a"]
    assert [(r.unit, r.line) for r in report.skipped] == [("row", 2), ("row", 3), ("row", 4)]


def test_load_dataset_by_name_dispatch(sms_file, tmp_path):
    assert len(load_dataset_by_name("sms_spam", sms_file)) == 5574
    path = write_lines(tmp_path / "d.csv", [b"t,l", b"x,yes"])
    assert load_dataset_by_name(str(path), text_column="t", label_column="l")["text"][:] == ["x"]
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset_by_name("nope")


# --- fields of any size, several files, missing files ------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_fields_over_csv_default_limit_of_128_kb(tmp_path, suffix):
    review = "a long review " * 10_000  # 140,000 characters; Python's csv module stops at 131,072
    assert len(review) == 140_000 > csv.field_size_limit()
    sep = "," if suffix == ".csv" else "\t"
    path = tmp_path / f"long{suffix}"
    path.write_text(f"text{sep}label\n{review}{sep}pos\nshort{sep}neg\n")
    limit = csv.field_size_limit()
    ds = load_text_file(path)
    assert ds["text"][:] == [review, "short"] and ds.features["label"].names == ["neg", "pos"]
    assert csv.field_size_limit() == limit  # the module-wide limit is put back


def three_files(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.csv").write_text("text,label\nhello,ham\nhi,ham\n")  # one class per file is fine
    (folder / "b.csv").write_text("text,label\nWIN,spam\n,spam\nfree,spam\n")  # line 3: empty text
    (folder / "c.jsonl").write_text('{"text": "yo", "label": "ham"}\n')
    return folder


def test_dataset_may_be_several_files_or_a_glob_with_every_file_and_line_named(tmp_path):
    folder = three_files(tmp_path)
    b = folder / "b.csv"
    with pytest.raises(DataError, match=rf"^{b}, line 3: empty text"):
        load_dataset_by_name(f"{folder}/*.csv")
    ds, report = load_dataset_by_name(f"{folder}/*.csv", on_bad_line="skip", return_report=True)
    assert ds["text"][:] == ["hello", "hi", "WIN", "free"]  # files in sorted order, rows in file order
    assert ds.features["label"].names == ["ham", "spam"] and ds["label"][:] == [0, 0, 1, 1]
    assert report.files == {str(folder / "a.csv"): (2, 2, 0), str(b): (3, 2, 1)}
    assert [(row.file, row.line) for row in report.skipped] == [(str(b), 3)]
    assert (report.rows_read, report.rows_kept) == (5, 4)
    listed = load_dataset_by_name(f"{folder}/c.jsonl,{folder}/a.csv", on_bad_line="skip")
    assert listed["text"][:] == ["yo", "hello", "hi"]
    # a shell-expanded glob gives --dataset several values
    (args,) = parse_args(
        (DataArguments,), ["--dataset", str(folder / "a.csv"), str(b), "--on_bad_line", "skip"]
    )
    assert args.dataset == f"{folder / 'a.csv'},{b}"
    assert dataset_label(args.dataset) == "a+b" and dataset_label(f"{folder}/*.csv") == "data"


def test_a_path_that_does_not_exist_says_no_such_file(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(FileNotFoundError, match=rf"^{missing}: no such file"):
        load_dataset_by_name(str(missing))
    with pytest.raises(
        FileNotFoundError, match=r"no_dir/\*\.csv: no such file \(the pattern matches no file\)"
    ):
        load_dataset_by_name(str(tmp_path / "no_dir" / "*.csv"))
    (tmp_path / "a.csv").write_text("text,label\nhello,ham\n")
    with pytest.raises(FileNotFoundError, match=rf"^{missing}: no such file"):  # the one missing of two
        load_splits(DataArguments(dataset=f"{tmp_path}/a.csv,{missing}"), seed=0)
    with pytest.raises(
        ValueError, match="unknown dataset 'smsspam': not 'sms_spam' or 'imdb', and no such file"
    ):
        load_dataset_by_name("smsspam")
