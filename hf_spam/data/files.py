"""Any local csv / tsv / jsonl / parquet file with a text column and a label column.

Why not ``datasets``' csv/json builders here: they read through pandas / pyarrow, which cannot
say on which line a non-UTF-8 byte sits, cannot skip one bad line and go on, and (pandas) quote
by default -- the very thing that silently merges 2 SMS messages. So text formats are read line
by line with the standard library (exact 1-based line numbers, also for csv fields that span
lines) and the validated rows become a ``datasets.Dataset``. Parquet is read with pyarrow (rows
have numbers, not lines).

Formats, by file suffix:

* ``.csv``: RFC 4180 csv (``"`` quoting, fields may span lines), header row first.
* ``.tsv`` / ``.tab``: tab-separated with a header row and **no quoting** (one row per line).
* ``.jsonl`` / ``.json``: JSON Lines, one object per line.
* ``.parquet``: any parquet file.

Several files (a glob such as ``data/*.csv``, paths separated by commas, or a list) load as one
dataset with one set of classes; every error names its file and line, and the report counts rows
read / kept / skipped per file.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, concatenate_datasets

from ..errors import DataError
from .labels import LabelMap, resolve_labels
from .report import Entry, LoadReport, OnBadLine, Unit
from .rows import build_dataset, iter_lines

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".csv", ".tsv", ".tab", ".jsonl", ".json"}
SUFFIXES = TEXT_SUFFIXES | {".parquet"}
_FIELD_SIZE = 2**31 - 1  # fits a C long everywhere; Python's csv default is 131,072 characters


@contextlib.contextmanager
def _any_field_size() -> Iterator[None]:
    """Lift ``csv.field_size_limit`` (128 KB by default) while reading, then put it back."""
    before = csv.field_size_limit(_FIELD_SIZE)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _missing_column(file: str, column: str, columns: Sequence[str]) -> DataError:
    return DataError(file, f"missing column '{column}'; the columns are {list(columns)}", column=column)


@dataclass(frozen=True)
class Columns:
    """The columns a file is read by: the text, the label and, for sentence pairs, the second text."""

    text: str = "text"
    label: str = "label"
    pair: str | None = None

    @property
    def wanted(self) -> list[str]:
        """Every column to read, in the order of an :class:`Entry`'s fields (text, label, pair)."""
        return [self.text, self.label, *([self.pair] if self.pair else [])]

    def entry(self, line: int, values: Sequence[object]) -> Entry:
        """An entry of the values of :attr:`wanted`, in that order."""
        return Entry(line, values[0], values[1], text_pair=values[2] if self.pair else None)


def _read_delimited(path: Path, columns: Columns, delimiter: str) -> Iterator[Entry]:
    """Entries of a csv (quoted) or tsv (unquoted) file; numbers are the line each record starts on."""
    bad_lines: dict[int, str] = {}

    def decoded() -> Iterator[str]:
        for number, line, error in iter_lines(path.read_bytes()):
            if error:
                bad_lines[number] = error
            yield (line if line is not None else "") + "\n"

    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(decoded(), delimiter=delimiter, quoting=quoting, strict=True)
    header = next(reader, None)
    if header is None:
        raise DataError(str(path), "empty file: no header row")
    if 1 in bad_lines:
        raise DataError(str(path), f"header: {bad_lines[1]}", line=1)
    for column in columns.wanted:
        if column not in header:
            raise _missing_column(str(path), column, header)
    at = [header.index(column) for column in columns.wanted]
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield Entry(start, error=f"csv error: {err}")
            start = reader.line_num + 1
            continue
        errors = [bad_lines[n] for n in range(start, reader.line_num + 1) if n in bad_lines]
        if errors:
            entry = Entry(start, error=errors[0])
        elif not fields:
            entry = Entry(start, error="blank line")
        elif len(fields) != len(header):
            entry = Entry(start, error=f"{len(fields)} fields, the header has {len(header)}")
        else:
            entry = columns.entry(start, [fields[i] for i in at])
        yield entry
        start = reader.line_num + 1


def _read_jsonl(path: Path, columns: Columns) -> list[Entry]:
    entries, seen_keys = [], set()
    for number, line, error in iter_lines(path.read_bytes()):
        if error or line is None or not line.strip():
            entries.append(Entry(number, error=error or "blank line"))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            entries.append(Entry(number, error=f"not valid JSON: {err}"))
            continue
        if not isinstance(record, dict):
            entries.append(Entry(number, error=f"a JSON {type(record).__name__}, not an object"))
            continue
        seen_keys.update(record)
        missing = [c for c in columns.wanted if c not in record]
        if missing:
            entries.append(Entry(number, error=f"missing column '{missing[0]}'; the keys are {list(record)}"))
        else:
            entries.append(columns.entry(number, [record[c] for c in columns.wanted]))
    for column in columns.wanted:
        if seen_keys and column not in seen_keys:
            raise _missing_column(str(path), column, sorted(seen_keys))
    return entries


def _read_parquet(path: Path, columns: Columns) -> list[Entry]:
    schema = pq.read_schema(path)
    for column in columns.wanted:
        if column not in schema.names:
            raise _missing_column(str(path), column, schema.names)
    table = pq.read_table(path, columns=columns.wanted)
    texts = [columns.text, *([columns.pair] if columns.pair else [])]
    binary = {
        c for c in texts if pa.types.is_binary(t := schema.field(c).type) or pa.types.is_large_binary(t)
    }
    entries = []
    rows = zip(*(table.column(c).to_pylist() for c in columns.wanted), strict=True)
    for row, values in enumerate(rows, 1):
        values = list(values)
        try:
            for i, column in enumerate(columns.wanted):
                if column in binary and values[i] is not None:
                    values[i] = values[i].decode("utf-8")
        except UnicodeDecodeError as err:
            entries.append(Entry(row, error=f"bytes that are not UTF-8 at byte {err.start}"))
            continue
        entries.append(columns.entry(row, values))
    return entries


def resolve_files(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The files ``spec`` names: a path, a glob pattern (``data/*.csv``), several of these separated
    by commas, or a list of them. Each file once, in the order given (a pattern's matches sorted).

    A path that does not exist, or a pattern that matches no file, is a ``FileNotFoundError`` naming
    it; a folder or an unsupported suffix is a ``ValueError`` naming the file.
    """
    pieces: list[str] = []
    for part in [spec] if isinstance(spec, (str, os.PathLike)) else list(spec):
        if isinstance(part, str):
            pieces += [piece.strip() for piece in part.split(",") if piece.strip()]
        else:
            pieces.append(os.fspath(part))
    if not pieces:
        raise ValueError(f"no file given: {spec!r}")
    files: list[Path] = []
    for piece in pieces:
        piece = os.path.expanduser(piece)
        if any(char in piece for char in "*?["):
            matches = sorted(Path(match) for match in glob.glob(piece) if Path(match).is_file())
            if not matches:
                raise FileNotFoundError(f"{piece}: no such file (the pattern matches no file)")
        else:
            path = Path(piece)
            if path.is_dir():
                raise ValueError(f"{path}: a folder, not a data file; name its files, e.g. '{path}/*.csv'")
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
            matches = [path]
        for path in matches:
            if path.suffix.lower() not in SUFFIXES:
                expected = ", ".join(sorted(SUFFIXES))
                raise ValueError(f"{path}: unsupported file type '{path.suffix}' (expected {expected})")
            if path.resolve() not in {file.resolve() for file in files}:
                files.append(path)
    return files


def _read_file(path: Path, columns: Columns) -> tuple[list[Entry], Unit]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path, columns), "row"
    if suffix in {".jsonl", ".json"}:
        return _read_jsonl(path, columns), "line"
    delimiter = "," if suffix == ".csv" else "\t"
    with _any_field_size():
        return list(_read_delimited(path, columns, delimiter)), "line"


def load_text_file(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    on_bad_line: OnBadLine = "error",
    clean: bool = False,
    label_map: LabelMap = None,
    return_report: bool = False,
    text_pair_column: str | None = None,
) -> Dataset | tuple[Dataset, LoadReport]:
    """Load csv / tsv / jsonl / parquet files as a Dataset with columns ``text`` and ``label`` (ClassLabel),
    and ``text_pair`` (the second text of a sentence pair) when ``text_pair_column`` names one.

    ``path``: a file, a glob pattern (``data/*.csv``), several separated by commas, or a list; the
    rows of every file are read in that order, with one set of classes. Labels (see
    :mod:`hf_spam.data.labels`): numbers (``1``, ``"1"``, ``1.0``) are class ids, named by
    ``label_names`` or ``"0".."n-1"``; other labels are class names, in ``label_names``' order if
    given (a label not in it is a bad row) or else sorted; ``label_map`` renames raw labels first;
    labels differing only by case or surrounding whitespace are a :class:`DataError`. A missing
    column raises :class:`DataError` naming it and the columns that exist. A bad row (not UTF-8,
    wrong field count, empty text, bad label) raises :class:`DataError` naming the file and line
    (parquet: row), or is skipped and reported with ``on_bad_line="skip"``. ``clean=True`` applies
    :func:`clean_text`. Fields of any size are read (Python's csv module stops at 128 KB).
    ``return_report=True`` also returns the :class:`LoadReport` (rows read / kept / skipped, in all and per
    file): ``(dataset, report)``.
    """
    files = resolve_files(path)
    source = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ",".join(map(os.fspath, path))
    read = []
    for file in files:
        entries, unit = _read_file(file, Columns(text_column, label_column, text_pair_column))
        for entry in entries:
            entry.file, entry.unit = str(file), unit
        read.append((file, unit, entries))
    everything = [entry for _, _, entries in read for entry in entries]
    scheme = resolve_labels(everything, source, label_names, label_map, numeric_strings=True)
    parts, report = [], LoadReport(source=source)
    for file, unit, entries in read:
        dataset, part = build_dataset(
            entries, str(file), on_bad_line=on_bad_line, clean=clean, unit=unit, scheme=scheme,
            pairs=text_pair_column is not None,
        )  # fmt: skip
        parts.append(dataset)
        report.merge(part)
    if len(files) > 1:
        logger.info("%s: %d files, %d rows kept", source, len(files), report.rows_kept)
    dataset = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return (dataset, report.check()) if return_report else dataset
