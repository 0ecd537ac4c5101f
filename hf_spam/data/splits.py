"""Train / validation / test splits that account for every row: ``book``, ``stratified``, ``official``.

Protocols (``fractions`` are train/validation/test, or train/validation for ``official``):

* ``book``: undersample every class to the minority count (seeded), shuffle the balanced set
  and cut it at ``int(n*f_train)`` and ``+ int(n*f_validation)``; the rest is test. The SMS
  file's 747 + 747 rows give exactly 1,045 / 149 / 300 at the default 70/10/20.
* ``stratified``: all rows; each label is shuffled and cut with the same rule, then each split
  is shuffled. Default 70/10/20.
* ``official``: a DatasetDict with ``train`` and ``test`` (IMDB). Test is kept as it is;
  validation is carved from train, stratified by label. Default 90/10.

``dedup=True`` keeps exact-duplicate texts together (sentence pairs: the same two texts): rows are grouped
by text, groups are shuffled and each group goes whole to the split in which its first row would fall. So
split sizes can move from the row-level cut by less than the size of the group that straddles each boundary
(a few rows on SMS), and no text is in two splits (checked). For ``official``, a text that is in
both the official train and test sets cannot be grouped (test is fixed), so with ``dedup=True``
its *train* rows are dropped and counted in ``rows_dropped_for_leakage``; test is never touched.

Every call makes (``return_report=True`` returns it) a :class:`SplitReport` whose counts satisfy
``rows_in == rows in the splits + rows_dropped_by_undersampling + rows_dropped_for_leakage``
(checked), and which says how many duplicate texts cross splits -- and would have crossed with
``dedup=False`` for the same seed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from datasets import Dataset, DatasetDict, concatenate_datasets

from ..errors import DataError
from .pairs import PAIR_COLUMN
from .report import LoadReport, format_table

logger = logging.getLogger(__name__)

Protocol = Literal["book", "stratified", "official"]
SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS: dict[str, tuple[float, ...]] = {
    "book": (0.7, 0.1, 0.2),
    "stratified": (0.7, 0.1, 0.2),
    "official": (0.9, 0.1),
}


@dataclass
class SplitReport:
    """Where every input row went, and how duplicate texts fell across the splits."""

    protocol: str
    seed: int
    dedup: bool
    fractions: tuple[float, ...]
    label_names: list[str]
    rows_in: int
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label name -> rows
    rows_dropped_by_undersampling: int = 0
    rows_dropped_for_leakage: int = 0  # official + dedup: train rows whose text is in test
    duplicate_rows_in: int = 0  # input rows whose exact text is in an earlier input row
    texts_with_conflicting_labels: int = 0
    duplicate_texts_crossing: int = 0  # distinct texts found in more than one output split
    duplicate_texts_crossing_without_dedup: int = 0  # the same for dedup=False with this seed
    load_report: LoadReport | None = None  # rows read / kept / skipped per file, when loaded for a run

    def split_sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {name: sum(per_label.values()) for name, per_label in self.rows.items()}

    def check(self) -> SplitReport:
        """Raise if a row is unaccounted for, or if ``dedup=True`` left a text in two splits."""
        out = sum(self.split_sizes().values())
        dropped = self.rows_dropped_by_undersampling + self.rows_dropped_for_leakage
        if self.rows_in != out + dropped:
            raise RuntimeError(
                f"split lost rows: {self.rows_in} in, {out} in splits + {dropped} dropped (a bug)"
            )
        if self.dedup and self.duplicate_texts_crossing:
            raise RuntimeError(
                f"dedup=True but {self.duplicate_texts_crossing} texts are in two splits (a bug)"
            )
        return self

    def format(self) -> str:
        """A plain table: rows per split and label, then drops and duplicates."""
        table = [
            [name, *(per_label.get(label, 0) for label in self.label_names), sum(per_label.values())]
            for name, per_label in self.rows.items()
        ]
        lines = [
            f"split protocol={self.protocol} seed={self.seed} dedup={self.dedup} fractions={self.fractions}",
            format_table(["split", *self.label_names, "total"], table),
        ]
        lines += [
            f"rows in: {self.rows_in}; dropped by undersampling: {self.rows_dropped_by_undersampling}; "
            f"dropped for train/test leakage: {self.rows_dropped_for_leakage}",
            f"duplicate rows in input: {self.duplicate_rows_in}; texts with conflicting labels: "
            f"{self.texts_with_conflicting_labels}",
            f"duplicate texts in two or more splits: {self.duplicate_texts_crossing} "
            f"(with dedup=False and this seed: {self.duplicate_texts_crossing_without_dedup})",
        ]
        return "\n".join(lines)


def check_classes(labels: Sequence[int], names: Sequence[str], source: str, where: str = "") -> None:
    """Raise :class:`DataError` unless ``labels`` (class ids) hold two or more classes and a row of
    every class in ``names`` -- so label ids with gaps, a single class, or a split lacking a class
    or left with no rows stop the run before any model loads. ``where`` names the split."""
    counts = Counter(int(label) for label in labels)
    prefix = f"split '{where}': " if where else ""
    if not counts:
        raise DataError(source, f"{prefix}no rows; the data are too few for this protocol's fractions")
    if where:
        missing = [name for i, name in enumerate(names) if not counts[i]]
        if missing:
            raise DataError(
                source,
                f"{prefix}no rows of class {', '.join(map(repr, missing))} (the split has "
                f"{dict((names[i], n) for i, n in sorted(counts.items()))}); every split needs every "
                "class: give these classes more rows",
            )
        return
    if len(counts) < 2:
        (only, n), *_ = counts.items()
        raise DataError(source, f"a single class: all {n} rows are {names[only]!r}; a classifier needs two")
    missing_ids = [i for i in range(len(names)) if not counts[i]]
    if not missing_ids:
        return
    present = ", ".join(f"{names[i]!r}" for i in sorted(counts))
    if list(names) == [str(i) for i in range(len(names))]:
        gaps = ", ".join(map(str, missing_ids))
        raise DataError(
            source,
            f"label ids with gaps: no rows with id {gaps} (ids present: {present}); class ids must be "
            "0..n-1: renumber them (e.g. --label_map '2=1')",
        )
    missing = ", ".join(repr(names[i]) for i in missing_ids)
    raise DataError(source, f"declared class {missing} has no rows (classes with rows: {present})")


def check_splits(
    splits: DatasetDict, source: str, fractions: Sequence[float] = (), label_column: str = "label"
) -> None:
    """:func:`check_classes` on every split: rows in each, and a row of every class in each. A split
    whose fraction is 0 (asked to be empty, e.g. ``fractions=(0.8, 0, 0.2)``) may stay empty."""
    asked_empty = {name for name, fraction in zip(SPLITS, fractions, strict=False) if fraction == 0}
    for name, part in splits.items():
        if name in asked_empty and len(part) == 0:
            continue
        check_classes(part[label_column][:], part.features[label_column].names, source, where=name)


def _cut_units(
    units: list[list[int]], rng: np.random.Generator, fractions: Sequence[float]
) -> list[list[int]]:
    """Shuffle units (rows or text groups) and cut at ``int(n*f)`` boundaries; a unit goes whole
    to the split in which its first row falls."""
    total = sum(len(unit) for unit in units)
    ends = [*np.cumsum([int(total * f) for f in fractions[:-1]]).tolist(), total]
    out: list[list[int]] = [[] for _ in fractions]
    start = 0
    for i in rng.permutation(len(units)):
        unit = units[i]
        out[next(k for k, end in enumerate(ends) if start < end)].extend(unit)
        start += len(unit)
    return out


def _units_by_label(rows: Sequence[int], labels: np.ndarray, texts: Sequence[str], dedup: bool) -> dict:
    """Units to cut, per label: single rows, or (dedup) groups of rows with one text, under the
    label of the group's first row."""
    by_label: dict[int, list[list[int]]] = defaultdict(list)
    if not dedup:
        for row in rows:
            by_label[int(labels[row])].append([row])
        return by_label
    groups: dict[str, list[int]] = {}
    for row in rows:
        groups.setdefault(texts[row], []).append(row)
    for group in groups.values():
        by_label[int(labels[group[0]])].append(group)
    return by_label


def _stratified(rows, labels, texts, rng, fractions, dedup) -> list[list[int]]:
    by_label = _units_by_label(rows, labels, texts, dedup)
    out: list[list[int]] = [[] for _ in fractions]
    for label in sorted(by_label):
        for k, part in enumerate(_cut_units(by_label[label], rng, fractions)):
            out[k].extend(part)
    return [[part[i] for i in rng.permutation(len(part))] for part in out]


def _book(labels, texts, rng, fractions, dedup) -> tuple[list[list[int]], int]:
    counts = Counter(labels.tolist())
    if len(counts) < 2:
        raise ValueError(f"the book protocol needs two or more classes, found {dict(counts)}")
    minority = min(counts.values())
    balanced: list[int] = []
    for label in sorted(counts):
        rows = np.flatnonzero(labels == label)
        balanced.extend(rows[rng.permutation(len(rows))[:minority]].tolist())
    units = _units_by_label(balanced, np.zeros_like(labels), texts, dedup)[0]
    return _cut_units(units, rng, fractions), len(labels) - len(balanced)


def _crossing(parts: Sequence[Sequence[int]], texts: Sequence[str]) -> int:
    seen: dict[str, set[int]] = defaultdict(set)
    for k, part in enumerate(parts):
        for row in part:
            seen[texts[row]].add(k)
    return sum(len(splits) > 1 for splits in seen.values())


def _assign(protocol, labels, texts, n_train, seed, fractions, dedup) -> tuple[list[list[int]], int, int]:
    """Row indices per split (rows of a concatenated train+test for official), undersampled, leaked."""
    rng = np.random.default_rng(seed)
    if protocol == "book":
        parts, undersampled = _book(labels, texts, rng, fractions, dedup)
        return parts, undersampled, 0
    if protocol == "stratified":
        return _stratified(range(len(labels)), labels, texts, rng, fractions, dedup), 0, 0
    test = list(range(n_train, len(labels)))
    train = list(range(n_train))
    if dedup:
        test_texts = {texts[row] for row in test}
        train = [row for row in train if texts[row] not in test_texts]
    return [*_stratified(train, labels, texts, rng, fractions, dedup), test], 0, n_train - len(train)


def _inputs(dataset: Dataset | DatasetDict, protocol: str) -> tuple[Dataset, int, Dataset | None]:
    """The rows to split as one Dataset, how many of them are official train rows, and the test set."""
    if protocol == "official":
        if not isinstance(dataset, DatasetDict) or set(dataset) != {"train", "test"}:
            found = list(dataset) if isinstance(dataset, DatasetDict) else "a Dataset"
            raise ValueError(
                f"protocol 'official' needs a DatasetDict with exactly train and test, got {found}"
            )
        return (
            concatenate_datasets([dataset["train"], dataset["test"]]),
            len(dataset["train"]),
            dataset["test"],
        )
    if isinstance(dataset, DatasetDict):
        logger.info("protocol %r: concatenating splits %s before splitting", protocol, list(dataset))
        dataset = concatenate_datasets(list(dataset.values()))
    return dataset, len(dataset), None


def _fractions(protocol: str, fractions: Sequence[float] | None) -> tuple[float, ...]:
    if protocol not in DEFAULT_FRACTIONS:
        raise ValueError(f"unknown split protocol {protocol!r}; use one of {list(DEFAULT_FRACTIONS)}")
    out = tuple(fractions or DEFAULT_FRACTIONS[protocol])
    if len(out) != len(DEFAULT_FRACTIONS[protocol]) or min(out) < 0 or abs(sum(out) - 1) > 1e-6:
        wanted = len(DEFAULT_FRACTIONS[protocol])
        raise ValueError(f"protocol {protocol!r} needs {wanted} fractions >= 0 that sum to 1, got {out}")
    return out


def split(
    dataset: Dataset | DatasetDict,
    protocol: Protocol,
    seed: int = 123,
    dedup: bool = False,
    fractions: Sequence[float] | None = None,
    text_column: str = "text",
    label_column: str = "label",
    source: str = "dataset",
    return_report: bool = False,
) -> DatasetDict | tuple[DatasetDict, SplitReport]:
    """Split into ``DatasetDict(train, validation, test)`` by ``protocol``; see this module's docstring.

    ``book`` and ``stratified`` take a Dataset (a DatasetDict's splits are concatenated first);
    ``official`` takes a DatasetDict with ``train`` and ``test``. Deterministic for a ``seed``.
    ``dedup=True`` puts each exact-duplicate text in one split only. ``return_report=True`` also returns
    the :class:`SplitReport` (rows per split and label, rows dropped and why, duplicate texts crossing;
    always logged at INFO). Raises :class:`DataError` (naming ``source``) for a single class, label ids
    with gaps, a split left with no rows or a split lacking a class (:func:`check_classes`).
    """
    fractions = _fractions(protocol, fractions)
    rows, n_train, test = _inputs(dataset, protocol)
    texts = rows[text_column][:]
    if PAIR_COLUMN in rows.column_names:  # a sentence pair is one example: duplicates are duplicate pairs
        texts = [f"{a}\0{b}" for a, b in zip(texts, rows[PAIR_COLUMN][:], strict=True)]
    labels = np.asarray(rows[label_column][:], dtype=np.int64)
    check_classes(labels[:n_train].tolist(), rows.features[label_column].names, source)
    parts, undersampled, leaked = _assign(protocol, labels, texts, n_train, seed, fractions, dedup)
    names = rows.features[label_column].names
    label_sets: dict[str, set[int]] = defaultdict(set)
    for text, label in zip(texts, labels.tolist(), strict=True):
        label_sets[text].add(label)
    without_dedup = _assign(protocol, labels, texts, n_train, seed, fractions, False)[0] if dedup else parts
    per_split = {
        split: Counter(names[labels[row]] for row in part) for split, part in zip(SPLITS, parts, strict=True)
    }
    report = SplitReport(
        protocol, seed, dedup, fractions, names, len(labels),
        rows={split: dict(counts) for split, counts in per_split.items()},
        rows_dropped_by_undersampling=undersampled,
        rows_dropped_for_leakage=leaked,
        duplicate_rows_in=len(texts) - len(label_sets),
        texts_with_conflicting_labels=sum(len(s) > 1 for s in label_sets.values()),
        duplicate_texts_crossing=_crossing(parts, texts),
        duplicate_texts_crossing_without_dedup=_crossing(without_dedup, texts),
    )  # fmt: skip
    logger.info("%s", report.check().format())
    out = {split: rows.select(part) for split, part in zip(SPLITS, parts, strict=True)}
    if test is not None:
        out["test"] = test
    check_splits(DatasetDict(out), source, fractions, label_column)
    return (DatasetDict(out), report) if return_report else DatasetDict(out)
