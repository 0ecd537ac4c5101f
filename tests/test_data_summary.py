"""``python -m hf_spam.data summary``: rows per split and label, token lengths, duplicates, skips."""

from __future__ import annotations

from datasets import Dataset, DatasetDict

from hf_spam.data.__main__ import main
from hf_spam.data.summary import token_length_table


def row(output: str, name: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [name])


def test_summary_of_the_book_split(sms_file, gpt2_tokenizer_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_SPAM_CACHE", str(tmp_path))
    args = ["summary", "--dataset", "sms_spam", "--source", str(sms_file), "--protocol", "book"]
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
