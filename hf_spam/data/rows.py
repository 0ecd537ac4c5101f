"""Row validation shared by every loader: lines of bytes in, a ``text``/``label`` Dataset out.

A reader turns its file into :class:`Entry` objects (one per row, with its 1-based line or row
number, the raw text and label, and a structural error such as "no tab" if it has one);
:func:`build_dataset` then validates each entry in file order, keeps the good rows and raises on
(or records) the bad ones.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetInfo, Features, Value
from datasets.table import InMemoryTable

from .clean import clean_text
from .report import DataError, LoadReport, OnBadLine, SkippedRow, Unit

logger = logging.getLogger(__name__)

_INTEGER = re.compile(r"[+-]?\d+")


@dataclass
class Entry:
    """One row as read: where it starts, its raw text and label, or a structural error."""

    line: int
    text: object = None
    label: object = None
    error: str | None = None
    file: str | None = None  # when rows of one dataset come from several files (aclImdb)


def iter_lines(data: bytes) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield ``(line_number, text, error)`` for each physical line of ``data`` (1-based numbers).

    Lines end at ``\\n`` (a ``\\r`` before it is dropped, so CRLF files read the same). Each line is
    decoded as UTF-8 on its own with ``errors="strict"``: a line that is not UTF-8 yields
    ``text=None`` and the error, so its number is known. A UTF-8 byte-order mark is dropped.
    Blank lines at the very end of the file (the empty "line" after the final newline included)
    are not rows; blank lines elsewhere are yielded (and are bad rows for the readers).
    """
    data = data.removeprefix(codecs.BOM_UTF8)
    pieces = data.split(b"\n")
    while pieces and not pieces[-1].strip():
        pieces.pop()
    for number, raw in enumerate(pieces, 1):
        raw = raw.removesuffix(b"\r")
        try:
            yield number, raw.decode("utf-8"), None
        except UnicodeDecodeError as err:
            yield (
                number,
                None,
                f"bytes that are not UTF-8 at byte {err.start}: {raw[err.start : err.start + 4]!r}",
            )


def _is_id(value: object, text_labels: bool) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return text_labels and isinstance(value, str) and _INTEGER.fullmatch(value.strip()) is not None


def label_scheme(
    labels: Sequence[object], label_names: Sequence[str] | None, text_labels: bool
) -> tuple[list[str], dict[object, int] | None]:
    """Decide the class names and how raw labels map to ids.

    Integer labels (or, for csv/tsv, labels that are all decimal integers) are class ids; their
    names are ``label_names`` or ``"0".."n-1"``. Otherwise labels are class names: ``label_names``
    in the given order, or the sorted distinct names. Returns ``(names, name_to_id)`` with
    ``name_to_id=None`` for integer ids.
    """
    present = [label for label in labels if label is not None]
    if present and all(_is_id(label, text_labels) for label in present):
        if label_names is not None:
            return list(label_names), None
        largest = max(int(label) for label in present)  # type: ignore[call-overload]
        return [str(i) for i in range(max(largest, 0) + 1)], None
    names = (
        list(label_names) if label_names is not None else sorted({x for x in present if isinstance(x, str)})
    )
    return names, {name: i for i, name in enumerate(names)}


def _label_id(
    label: object, names: list[str], name_to_id: dict[object, int] | None
) -> tuple[int | None, str]:
    if label is None:
        return None, "missing label"
    if name_to_id is not None:
        if isinstance(label, str) and label in name_to_id:
            return name_to_id[label], ""
        return None, f"unknown label {label!r} (expected one of {names})"
    value = int(label)  # type: ignore[call-overload]
    if 0 <= value < len(names):
        return value, ""
    return None, f"label id {value} out of range for {len(names)} classes {names}"


def _text_problem(text: object) -> str:
    if text is None:
        return "missing text"
    if not isinstance(text, str):
        return f"text is {type(text).__name__}, not a string"
    return "" if text.strip() else "empty text"


def build_dataset(
    entries: Iterable[Entry],
    file: str,
    label_names: Sequence[str] | None = None,
    on_bad_line: OnBadLine = "error",
    clean: bool = False,
    unit: Unit = "line",
    text_labels: bool = False,
) -> tuple[Dataset, LoadReport]:
    """Validate ``entries`` in order and return the kept rows as a Dataset with a :class:`LoadReport`.

    A bad entry (structural error, missing/empty text -- also after :func:`clean_text` when
    ``clean`` -- or a label that is unknown or out of range) raises :class:`DataError` naming
    ``file`` and the entry's line, or with ``on_bad_line="skip"`` is recorded and skipped.
    """
    if on_bad_line not in ("error", "skip"):
        raise ValueError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
    entries = list(entries)
    names, name_to_id = label_scheme([e.label for e in entries if e.error is None], label_names, text_labels)
    report = LoadReport(source=file, rows_read=len(entries))
    texts: list[str] = []
    ids: list[int] = []
    for entry in entries:
        reason = entry.error or _text_problem(entry.text)
        text = entry.text
        if not reason and clean:
            text = clean_text(text)  # type: ignore[arg-type]
            reason = "empty text after clean_text" if not text else ""
        label_id = None
        if not reason:
            label_id, reason = _label_id(entry.label, names, name_to_id)
        if reason:
            if on_bad_line == "error":
                raise DataError(entry.file or file, reason, line=entry.line, unit=unit)
            report.skipped.append(SkippedRow(entry.file or file, entry.line, reason, unit))
            continue
        texts.append(text)  # type: ignore[arg-type]
        ids.append(label_id)  # type: ignore[arg-type]
    report.rows_kept = len(texts)
    report.check().log()
    if not texts:
        raise DataError(file, f"no rows kept ({report.rows_read} read, {len(report.skipped)} skipped)")
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    # Dataset.from_dict would re-encode every example; the columns are already validated and typed.
    table = pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(ids, pa.int64())})
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features)), report
