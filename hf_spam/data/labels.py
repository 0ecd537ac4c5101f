"""From the labels a file holds to class ids, decided once for all the rows of a dataset.

Rules, in order (:func:`resolve_labels`):

1. ``label_map`` (``"Spam=spam,spam =spam"`` or a mapping) renames raw labels, matched exactly as
   written (numbers by their text: ``1``, ``1.0``). A key that matches no row is logged.
2. Numbers are class ids when every label is a number (``1``, ``1.0``, ``"1"`` and ``"1.0"`` in a
   csv, tsv, jsonl or parquet file): an integral float is that integer, a non-integral one
   (``0.5``) is a bad row naming its line. The class names are ``label_names`` or ``"0".."n-1"``.
3. Otherwise labels are class names. With declared names (``label_names``, or a loader's fixed
   ``ham``/``spam``), a label equal to exactly one of them up to case and surrounding whitespace
   is that class (logged with its count). Two labels left that differ only by case or surrounding
   whitespace (``spam``, ``Spam``, ``spam ``) are a :class:`DataError` naming each variant, its
   row count and first line, and the ``--label_map`` that merges them -- never two classes.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import DataError
from .report import Entry

logger = logging.getLogger(__name__)

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
MAX_VARIANTS_SHOWN = 10
#: ``--label_map``: ``"RAW=NAME,..."``, a mapping (YAML), or None
LabelMap = str | Mapping[str, str] | None


@dataclass
class LabelScheme:
    """The class names in id order, and how a (resolved) label maps to its id."""

    names: list[str]
    name_to_id: dict[str, int] | None  # None: labels are already integer class ids

    def label_id(self, label: object) -> tuple[int | None, str]:
        """``(id, "")`` for a good label, ``(None, reason)`` for a bad one."""
        if label is None:
            return None, "missing label"
        if self.name_to_id is None:
            value = int(label)  # type: ignore[call-overload]
            if 0 <= value < len(self.names):
                return value, ""
            return None, f"label id {value} out of range for {len(self.names)} classes {self.names}"
        if isinstance(label, str) and label in self.name_to_id:
            return self.name_to_id[label], ""
        return None, f"unknown label {label!r} (expected one of {self.names})"


def parse_label_map(value: LabelMap) -> dict[str, str]:
    """``"RAW=NAME,RAW=NAME"`` (or a mapping, e.g. from YAML) as ``{raw label: class name}``.

    Entries are separated by commas and split at their last ``=``; ``RAW`` is kept exactly as
    written (``"spam =spam"`` maps the label with a trailing space), ``NAME`` is stripped. Use a
    YAML mapping for labels holding a comma. Raises ``ValueError`` naming a malformed entry.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        pairs = [(str(raw), str(name)) for raw, name in value.items()]
    else:
        pairs = []
        for item in str(value).split(","):
            raw, sep, name = item.rpartition("=")
            if not sep or not raw:
                raise ValueError(f"--label_map: {item!r} is not RAW=NAME (e.g. 'Spam=spam,spam =spam')")
            pairs.append((raw, name))
    out: dict[str, str] = {}
    for raw, name in pairs:
        if not name.strip():
            raise ValueError(f"--label_map: {raw!r} maps to an empty class name")
        if raw in out:
            raise ValueError(f"--label_map: {raw!r} is mapped twice")
        out[raw] = name.strip()
    return out


def _key(label: object) -> str | None:
    if isinstance(label, str):
        return label
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        return str(label)
    return None


def _number(label: object, numeric_strings: bool) -> float | int | None:
    """The label as a number, or None when it is not one."""
    if isinstance(label, bool):
        return None
    if isinstance(label, (int, float)):
        return label
    if numeric_strings and isinstance(label, str) and _NUMBER.fullmatch(label.strip()):
        text = label.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return None


def _fold(label: str) -> str:
    return label.strip().casefold()


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _where(entry: Entry, source: str) -> str:
    return f"{entry.file or source}, {entry.unit} {entry.line}"


def _apply_map(entries: list[Entry], source: str, label_map: Mapping[str, str]) -> None:
    used: Counter[str] = Counter()
    for entry in entries:
        key = _key(entry.label)
        if key is not None and key in label_map:
            entry.label = label_map[key]
            used[key] += 1
    for raw in label_map:
        if raw not in used:
            logger.warning("%s: --label_map key %r matches no label (matched as written)", source, raw)


def _as_ids(entries: list[Entry], label_names: Sequence[str] | None) -> LabelScheme:
    """Numbers to integer ids; a non-integral number becomes the entry's error (a bad row)."""
    largest = 0
    for entry in entries:
        value = _number(entry.label, True)
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                entry.error = f"label {entry.label!r} is not a whole number (class ids are 0, 1, 2, ...)"
                continue
            value = int(value)
        entry.label = value
        largest = max(largest, value)  # type: ignore[type-var]
    names = list(label_names) if label_names is not None else [str(i) for i in range(largest + 1)]
    return LabelScheme(names, None)


def _fold_onto_names(entries: list[Entry], source: str, names: Sequence[str]) -> None:
    """A label equal to exactly one declared name up to case and surrounding whitespace is that name."""
    declared = set(names)
    by_fold: dict[str, list[str]] = {}
    for name in names:
        by_fold.setdefault(_fold(name), []).append(name)
    renamed: Counter[tuple[str, str]] = Counter()
    for entry in entries:
        label = entry.label
        if isinstance(label, str) and label not in declared and len(by_fold.get(_fold(label), [])) == 1:
            entry.label = by_fold[_fold(label)][0]
            renamed[(label, entry.label)] += 1
    for (raw, name), count in sorted(renamed.items()):
        logger.warning("%s: read label %r (%s) as the declared class %r", source, raw, _rows(count), name)


def _check_variants(entries: list[Entry], source: str, declared: Sequence[str] | None) -> None:
    """Raise when two labels differ only by case or surrounding whitespace."""
    counts: Counter[str] = Counter()
    first: dict[str, Entry] = {}
    for entry in entries:
        if isinstance(entry.label, str):
            counts[entry.label] += 1
            first.setdefault(entry.label, entry)
    groups: dict[str, list[str]] = {}
    for label in counts:
        groups.setdefault(_fold(label), []).append(label)
    clashes = [
        sorted(group, key=lambda label: (-counts[label], label))
        for group in groups.values()
        if len(group) > 1 and not set(group) <= set(declared or ())
    ]
    if not clashes:
        return
    described = [
        f"{label!r} ({_rows(counts[label])}, first at {_where(first[label], source)})"
        for group in clashes
        for label in group
    ]
    suggestion = ",".join(f"{label}={group[0]}" for group in clashes for label in group[1:])
    shown = "; ".join(described[:MAX_VARIANTS_SHOWN])
    if len(described) > MAX_VARIANTS_SHOWN:
        shown += f"; ... and {len(described) - MAX_VARIANTS_SHOWN} more"
    raise DataError(
        source,
        f"labels that differ only by case or surrounding whitespace: {shown}. Say which class each is "
        f"with --label_map '{suggestion}' (or declare the classes with --label_names)",
    )


def resolve_labels(
    entries: list[Entry],
    source: str,
    label_names: Sequence[str] | None = None,
    label_map: LabelMap = None,
    numeric_strings: bool = True,
) -> LabelScheme:
    """Decide the classes of ``entries`` (rows without a structural error) as this module says.

    Rewrites each entry's ``label`` (mapped, numbers made ``int``, case variants folded onto
    declared names) and sets ``error`` on a non-integral number. ``numeric_strings``: a string
    that is a number counts as a number (generic files; the SMS and aclImdb formats say False).
    Raises :class:`DataError` for labels that differ only by case or surrounding whitespace.
    """
    rows = [entry for entry in entries if entry.error is None]
    mapping = parse_label_map(label_map)
    if mapping:
        _apply_map(rows, source, mapping)
    present = [entry for entry in rows if entry.label is not None]
    if present and all(_number(entry.label, numeric_strings) is not None for entry in present):
        return _as_ids(present, label_names)
    if label_names is not None:
        _fold_onto_names(present, source, label_names)
    _check_variants(present, source, label_names)
    names = (
        list(label_names)
        if label_names is not None
        else sorted({entry.label for entry in present if isinstance(entry.label, str)})
    )
    return LabelScheme(names, {name: i for i, name in enumerate(names)})
