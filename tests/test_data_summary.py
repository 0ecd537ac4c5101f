"""``python -m hf_spam.data summary``: rows per split and label, token lengths, duplicates, skips."""

from __future__ import annotations

from datasets import Dataset, DatasetDict

from hf_spam.arguments import DataArguments
from hf_spam.data.__main__ import build_parser, main, parse
from hf_spam.data.summary import token_length_table


def row(output: str, name: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [name])


def test_summary_of_the_book_split(sms_file, gpt2_tokenizer_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_SPAM_CACHE", str(tmp_path))
    args = ["summary", "--dataset", "sms_spam", "--data_source", str(sms_file), "--protocol", "book"]
    assert main([*args, "--tokenizer", str(gpt2_tokenizer_dir), "--max_length", "64"]) == 0
    out = capsys.readouterr().out
    assert "rows read: 5574; kept: 5574; skipped: 0" in out
    assert (
        row(out, "train")[-1] == "1045"
        and row(out, "validation")[-1] == "149"
        and row(out, "test")[-1] == "300"
    )
    assert "dropped by undersampling: 4080" in out and "duplicate rows in input: 403" in out
    table = out[out.index("token lengths") :].splitlines()[1:]
    assert table[0].split() == ["split", "p50", "p90", "p95", "p99", "max", ">64"]
    for line, name in zip(table[1:], ("train", "validation", "test"), strict=True):
        cells = line.split()
        assert cells[0] == name and int(cells[1]) <= int(cells[2]) <= int(cells[5]) and int(cells[6]) > 0


def test_summary_lists_skipped_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_SPAM_CACHE", str(tmp_path))
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20)) + ",a\n")
    main(["summary", "--dataset", str(path), "--protocol", "stratified", "--on_bad_line", "skip"])
    out = capsys.readouterr().out
    assert "rows read: 21; kept: 20; skipped: 1" in out and f"skipped {path}, line 22: empty text" in out


def test_token_length_table_percentiles():
    tokens = DatasetDict({"train": Dataset.from_dict({"num_tokens": list(range(1, 101))})})
    assert row(token_length_table(tokens, 95), "train") == ["train", "50", "90", "95", "99", "100", "5"]


def option_strings(parser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_summary_takes_the_recipes_data_flags(tmp_path, caplog):
    from transformers import HfArgumentParser

    summary = next(a for a in build_parser()._actions if a.dest == "command").choices["summary"]
    recipe_flags = option_strings(HfArgumentParser(DataArguments))
    assert {
        "--dataset",
        "--data_source",
        "--protocol",
        "--dedup",
        "--clean_text",
        "--on_bad_line",
    } <= recipe_flags
    assert {"--label_names", "--label_map"} <= recipe_flags
    assert recipe_flags <= option_strings(summary)
    path = str(tmp_path / "d.csv")
    argv = ["summary", "--dataset", path, "--clean_text", "--on_bad_line", "skip", "--label_map", "A=a"]
    data_args, _ = parse(argv)
    assert (data_args.dataset, data_args.clean_text, data_args.on_bad_line) == (path, True, "skip")
    assert data_args.label_map == "A=a"
    with caplog.at_level("WARNING"):  # the old names still work, with a warning
        old, _ = parse(["summary", "--dataset", "sms_spam", "--source", "x", "--clean"])
    assert (old.data_source, old.clean_text) == ("x", True) and "--source is deprecated" in caplog.text


def test_summary_of_several_files_counts_rows_per_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_SPAM_CACHE", str(tmp_path))
    for name, label in (("a", "ham"), ("b", "spam")):
        rows = "".join(f"{name}{i},{label}\n" for i in range(20)) + (",spam\n" if name == "b" else "")
        (tmp_path / f"{name}.csv").write_text("text,label\n" + rows)
    files = [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    main(["summary", "--dataset", *files, "--protocol", "stratified", "--on_bad_line", "skip"])
    out = capsys.readouterr().out
    assert "rows read: 41; kept: 40; skipped: 1" in out
    assert row(out, str(tmp_path / "a.csv"))[1:] == ["20", "20", "0"]
    assert row(out, str(tmp_path / "b.csv"))[1:] == ["21", "20", "1"]
    assert f"skipped {tmp_path / 'b.csv'}, line 22: empty text" in out


def test_summary_command_reports_a_user_error_in_one_line(tmp_path):
    """``python -m hf_spam.data summary`` with a missing file: one ``error:`` line naming it, exit 1."""
    import subprocess
    import sys

    missing = tmp_path / "nope.csv"
    done = subprocess.run(
        [sys.executable, "-m", "hf_spam.data", "summary", "--dataset", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and str(missing) in lines[-1] and "no such file" in lines[-1]
    assert "Traceback" not in done.stderr
