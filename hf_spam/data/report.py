"""Rows as read and load accounting: :class:`Entry`, :class:`SkippedRow`, :class:`LoadReport`.

Every loader counts each row it reads. A bad row either stops loading with a :class:`DataError`
naming the file and the line (``on_bad_line="error"``, the default) or is skipped, logged at
WARNING and recorded in the :class:`LoadReport` (``on_bad_line="skip"``). The invariant
``rows_read == rows_kept + len(skipped)`` is checked before a report is handed back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

logger = logging.getLogger(__name__)

OnBadLine = Literal["error", "skip"]
#: How a row is located in its file: a 1-based physical ``line`` (text formats), a 1-based data
#: ``row`` (parquet, hub datasets), or a ``column`` problem that concerns the whole file.
Unit = Literal["line", "row"]


def format_table(header: list[str], rows: list[list[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        row[0].ljust(widths[0])
        + "".join(cell.rjust(w + 2) for cell, w in zip(row[1:], widths[1:], strict=True))
        for row in cells
    )


@dataclass
class Entry:
    """One row as read: where it starts, its raw text and label, or a structural error."""

    line: int
    text: object = None
    label: object = None
    error: str | None = None
    file: str | None = None  # when rows of one dataset come from several files (aclImdb, globs)
    unit: Unit = "line"  # how ``line`` counts: physical lines, or data rows (parquet, hub)
    text_pair: object = None  # the second text of a sentence pair (--text_pair_column), else None


@dataclass(frozen=True)
class SkippedRow:
    """One skipped row: its file, its 1-based line (or row, see ``unit``) and why it was skipped."""

    file: str
    line: int
    reason: str
    unit: Unit = "line"

    def __str__(self) -> str:
        return f"{self.file}, {self.unit} {self.line}: {self.reason}"


@dataclass
class LoadReport:
    """Where every row read from a source went: kept, or skipped (with line and reason)."""

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    #: per file read: (rows read, rows kept, rows skipped)
    files: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def skipped_lines(self) -> list[int]:
        """The 1-based line (or row) numbers of the skipped rows, in file order."""
        return [row.line for row in self.skipped]

    def merge(self, other: LoadReport) -> LoadReport:
        """Add ``other``'s counts and skipped rows to this report (for sources made of several files)."""
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        self.skipped.extend(other.skipped)
        for file, counts in other.files.items():
            before = self.files.get(file, (0, 0, 0))
            self.files[file] = tuple(a + b for a, b in zip(before, counts, strict=True))  # type: ignore[assignment]
        return self

    def check(self) -> LoadReport:
        """Raise if a row is unaccounted for (``rows_read != rows_kept + len(skipped)``)."""
        if self.rows_read != self.rows_kept + len(self.skipped):
            raise RuntimeError(
                f"{self.source}: {self.rows_read} rows read but {self.rows_kept} kept + "
                f"{len(self.skipped)} skipped; rows were lost (this is a bug)"
            )
        return self

    def log(self) -> None:
        """Log every skipped row at WARNING and the totals at INFO."""
        for row in self.skipped:
            logger.warning("skipped %s", row)
        logger.info(
            "%s: %d rows read, %d kept, %d skipped",
            self.source,
            self.rows_read,
            self.rows_kept,
            len(self.skipped),
        )
