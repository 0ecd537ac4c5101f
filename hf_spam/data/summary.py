"""A readable account of a loaded and split dataset: rows per split and label, token lengths,
duplicates and every dropped or skipped row."""

from __future__ import annotations

import numpy as np
from datasets import DatasetDict
from transformers import PreTrainedTokenizerBase

from .report import LoadReport, format_table
from .splits import SplitReport
from .tokenizing import resolve_max_length, tokenize

PERCENTILES = (50, 90, 95, 99)
MAX_SKIPPED_SHOWN = 20


def load_summary(report: LoadReport) -> str:
    """Rows read / kept / skipped (per file when there are several), with the first skipped rows and
    their reasons."""
    lines = [
        f"source: {report.source}",
        f"rows read: {report.rows_read}; kept: {report.rows_kept}; skipped: {len(report.skipped)}",
    ]
    if len(report.files) > 1:
        table = [[file, *counts] for file, counts in report.files.items()]
        lines.append(format_table(["file", "read", "kept", "skipped"], table))
    lines += [f"  skipped {row}" for row in report.skipped[:MAX_SKIPPED_SHOWN]]
    if len(report.skipped) > MAX_SKIPPED_SHOWN:
        lines.append(f"  ... and {len(report.skipped) - MAX_SKIPPED_SHOWN} more (all are logged)")
    return "\n".join(lines)


def token_length_table(tokenized: DatasetDict, max_length: int) -> str:
    """Percentiles of the token count *before truncation* per split, and how many exceed ``max_length``."""
    header = ["split", *(f"p{p}" for p in PERCENTILES), "max", f">{max_length}"]
    rows: list[list[object]] = []
    for name, part in tokenized.items():
        lengths = np.asarray(part.with_format("arrow")["num_tokens"].to_numpy())
        percentiles = [int(np.percentile(lengths, p)) for p in PERCENTILES]
        rows.append([name, *percentiles, int(lengths.max()), int((lengths > max_length).sum())])
    return format_table(header, rows)


def summarize(
    splits: DatasetDict,
    split_report: SplitReport,
    load_report: LoadReport | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_length: int | None = None,
) -> str:
    """The whole account as plain text: loading, the split table with drops and duplicate
    counts, and (with a tokenizer) token-length percentiles per split."""
    parts = [load_summary(load_report)] if load_report is not None else []
    parts.append(split_report.format())
    if tokenizer is not None:
        max_length = resolve_max_length(tokenizer, max_length)
        table = token_length_table(tokenize(splits, tokenizer, max_length=max_length), max_length)
        parts.append(f"token lengths before truncation (special tokens included):\n{table}")
    return "\n\n".join(parts)
