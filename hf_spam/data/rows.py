"""Row validation shared by every loader: lines of bytes in, a ``text``/``label`` Dataset out.

A reader turns its file into :class:`~.report.Entry` objects (one per row, with its 1-based line or row
number, the raw text and label, and a structural error such as "no tab" if it has one);
:func:`build_dataset` then validates each entry in file order, keeps the good rows and raises on
(or records) the bad ones.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetInfo, Features, Value
from datasets.table import InMemoryTable

from ..errors import DataError
from .clean import clean_text
from .labels import LabelMap, LabelScheme, resolve_labels
from .pairs import PAIR_COLUMN
from .report import Entry, LoadReport, OnBadLine, SkippedRow, Unit

logger = logging.getLogger(__name__)


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


def _text_problem(text: object, what: str = "text") -> str:
    if text is None:
        return f"missing {what}"
    if not isinstance(text, str):
        return f"{what} is {type(text).__name__}, not a string"
    return "" if text.strip() else f"empty {what}"


def build_dataset(
    entries: Iterable[Entry],
    file: str,
    label_names: Sequence[str] | None = None,
    on_bad_line: OnBadLine = "error",
    clean: bool = False,
    unit: Unit = "line",
    numeric_strings: bool = False,
    label_map: LabelMap = None,
    scheme: LabelScheme | None = None,
    pairs: bool = False,
) -> tuple[Dataset, LoadReport]:
    """Validate ``entries`` in order and return the kept rows as a Dataset with a :class:`LoadReport`.

    Labels are resolved by :func:`~hf_spam.data.labels.resolve_labels` (``label_names``,
    ``label_map``, ``numeric_strings``), or by a ``scheme`` already decided for several files. A bad
    entry (structural error, missing/empty text -- also after :func:`clean_text` when ``clean`` --
    or a label that is unknown, out of range or not a whole number) raises :class:`DataError`
    naming ``file`` and the entry's line, or with ``on_bad_line="skip"`` is recorded and skipped.
    ``pairs``: entries carry a second text (``text_pair``), validated as the text is and kept in a
    ``text_pair`` column.
    """
    if on_bad_line not in ("error", "skip"):
        raise ValueError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
    entries = list(entries)
    if scheme is None:
        for entry in entries:
            entry.unit = unit
        scheme = resolve_labels(entries, file, label_names, label_map, numeric_strings)
    report = LoadReport(source=file, rows_read=len(entries))
    texts: list[str] = []
    text_pairs: list[str] = []
    ids: list[int] = []
    for entry in entries:
        reason = entry.error or _text_problem(entry.text)
        if pairs and not reason:
            reason = _text_problem(entry.text_pair, PAIR_COLUMN)
        text, text_pair = entry.text, entry.text_pair
        if not reason and clean:
            text = clean_text(text)  # type: ignore[arg-type]
            text_pair = clean_text(text_pair) if pairs else None  # type: ignore[arg-type]
            reason = "empty text after clean_text" if not text or (pairs and not text_pair) else ""
        label_id = None
        if not reason:
            label_id, reason = scheme.label_id(entry.label)
        if reason:
            if on_bad_line == "error":
                raise DataError(entry.file or file, reason, line=entry.line, unit=unit)
            report.skipped.append(SkippedRow(entry.file or file, entry.line, reason, unit))
            continue
        texts.append(text)  # type: ignore[arg-type]
        if pairs:
            text_pairs.append(text_pair)  # type: ignore[arg-type]
        ids.append(label_id)  # type: ignore[arg-type]
    report.rows_kept = len(texts)
    report.files[file] = (report.rows_read, report.rows_kept, len(report.skipped))
    report.check().log()
    if not texts:
        raise DataError(file, f"no rows kept ({report.rows_read} read, {len(report.skipped)} skipped)")
    columns = {"text": pa.array(texts, pa.string()), "label": pa.array(ids, pa.int64())}
    features = Features({"text": Value("string"), "label": ClassLabel(names=scheme.names)})
    if pairs:
        columns[PAIR_COLUMN] = pa.array(text_pairs, pa.string())
        features[PAIR_COLUMN] = Value("string")
    # Dataset.from_dict would re-encode every example; the columns are already validated and typed.
    table = pa.table(columns)
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features)), report
