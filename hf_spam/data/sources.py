"""The named datasets: SMS Spam Collection and IMDB, and :func:`load_dataset_by_name` for recipes.

Every loader returns columns ``text`` (string) and ``label`` (``ClassLabel``) only; with
``return_report=True`` it also returns the :class:`~hf_spam.data.report.LoadReport` (rows
read / kept / skipped with line numbers).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from datasets import Dataset, DatasetDict, load_dataset

from ..hub.access import ensure_reachable, is_local
from .cache import download_member, get_cache_dir, sha256_file
from .files import SUFFIXES, load_text_file
from .labels import LabelMap
from .report import Entry, LoadReport, OnBadLine
from .rows import build_dataset, iter_lines

logger = logging.getLogger(__name__)

SMS_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_FILE = "SMSSpamCollection"
SMS_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
SMS_LABELS = ("ham", "spam")
IMDB_HUB_ID = "stanfordnlp/imdb"
IMDB_LABELS = ("neg", "pos")
IMDB_SPLITS = ("train", "test")


def _is_url(source: str | os.PathLike) -> bool:
    return urlparse(os.fspath(source)).scheme in {"http", "https", "file"}


def _sms_path(source: str | os.PathLike | None) -> Path:
    if source is None or _is_url(source):
        return download_member(
            os.fspath(source or SMS_URL),
            SMS_FILE,
            SMS_SHA256,
            what="the SMS Spam Collection",
            alternatives="Pass a local copy: --data_source ../shared/data/sms_spam/SMSSpamCollection",
            cache_dir=get_cache_dir() / "sms_spam",
        )
    path = Path(os.fspath(source)).expanduser()
    if path.is_dir():
        path = path / SMS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file (expected the UCI file '{SMS_FILE}' or a folder holding it)"
        )
    digest = sha256_file(path)
    if digest != SMS_SHA256:
        logger.info(
            "%s: sha256 %s differs from the official file's %s (an edited copy?)", path, digest, SMS_SHA256
        )
    return path


def load_sms_spam(
    source: str | os.PathLike | None = None,
    on_bad_line: OnBadLine = "error",
    clean: bool = False,
    label_map: LabelMap = None,
    return_report: bool = False,
) -> Dataset | tuple[Dataset, LoadReport]:
    """The UCI SMS Spam Collection: columns ``text`` and ``label`` (``ClassLabel(["ham", "spam"])``).

    ``source``: ``None`` downloads the UCI zip once into ``$HF_SPAM_CACHE/sms_spam`` (default
    ``~/.cache/hf_spam``) and checks the sha256 of ``SMSSpamCollection`` (a mismatch is an
    error naming both hashes); another ``http(s)://`` or ``file://`` URL of such a zip works the
    same; a local file, or a folder holding ``SMSSpamCollection``, is read directly (a checksum
    that differs from the official one is only logged at INFO).

    One message per physical line, split on the first tab into label and text, so the official
    file gives exactly 5,574 rows (4,827 ham, 747 spam); pandas' default quoting gives 5,572.
    Texts are kept byte for byte unless ``clean=True`` (:func:`~hf_spam.data.clean.clean_text`).
    A line with no tab, a label other than ham/spam, an empty text or bytes that are not UTF-8
    raise :class:`~hf_spam.errors.DataError` naming the file and line, or are skipped and
    reported with ``on_bad_line="skip"``. A label that is ham or spam up to case and surrounding
    whitespace (``Spam``) is read as that class and logged; ``label_map`` renames labels first.
    ``return_report=True`` also returns the :class:`~hf_spam.data.report.LoadReport`.
    """
    path = _sms_path(source)
    entries = []
    for number, line, error in iter_lines(path.read_bytes()):
        if error is None and "\t" not in line:  # type: ignore[operator]
            error = "no tab between label and text"
        if error:
            entries.append(Entry(number, error=error))
            continue
        label, _, text = line.partition("\t")  # type: ignore[union-attr]
        entries.append(Entry(number, text, label))
    dataset, report = build_dataset(entries, str(path), SMS_LABELS, on_bad_line, clean, label_map=label_map)
    return (dataset, report) if return_report else dataset


def _review_entry(path: Path, label: str) -> Entry:
    """One aclImdb review file as an entry; a non-UTF-8 byte is located to its line in the file."""
    data = path.read_bytes()
    try:
        return Entry(1, data.decode("utf-8"), label, file=str(path))
    except UnicodeDecodeError:
        number, error = next((n, e) for n, _, e in iter_lines(data) if e)
        return Entry(number, error=error, file=str(path))


def _review_order(path: Path) -> tuple[int, str]:
    stem = path.stem.split("_")[0]
    return (int(stem) if stem.isdigit() else -1, path.name)


def _load_acl_imdb(
    root: Path, on_bad_line: OnBadLine, clean: bool, label_map: LabelMap
) -> tuple[DatasetDict, LoadReport]:
    """The original aclImdb tree: {train,test}/{neg,pos}/{id}_{rating}.txt (``unsup`` is not read)."""
    splits, report = {}, LoadReport(source=str(root))
    for split in IMDB_SPLITS:
        entries = [
            _review_entry(path, label)
            for label in IMDB_LABELS
            for path in sorted((root / split / label).glob("*.txt"), key=_review_order)
        ]
        splits[split], part = build_dataset(
            entries, str(root / split), IMDB_LABELS, on_bad_line, clean, label_map=label_map
        )
        report.merge(part)
    return DatasetDict(splits), report.check()


def _load_imdb_files(
    folder: Path, on_bad_line: OnBadLine, clean: bool, label_map: LabelMap
) -> tuple[DatasetDict, LoadReport]:
    """``{train,test}.{parquet,csv,tsv,jsonl}`` (or shards ``train-*.parquet``) in ``folder``."""
    splits, report = {}, LoadReport(source=str(folder))
    for split in IMDB_SPLITS:
        files = sorted(
            path
            for path in folder.iterdir()
            if path.suffix.lower() in SUFFIXES and (path.stem == split or path.stem.startswith(f"{split}-"))
        )
        if not files:
            raise FileNotFoundError(
                f"{folder}: no '{split}' data: expected an aclImdb tree ({split}/pos, {split}/neg) "
                f"or a file {split}.parquet / .csv / .tsv / .jsonl"
            )
        splits[split], part = load_text_file(
            files, label_names=IMDB_LABELS, on_bad_line=on_bad_line, clean=clean, label_map=label_map,
            return_report=True,
        )  # fmt: skip
        report.merge(part)
    return DatasetDict(splits), report.check()


def _load_imdb_hub(
    hub_id: str, on_bad_line: OnBadLine, clean: bool, label_map: LabelMap
) -> tuple[DatasetDict, LoadReport]:
    ensure_reachable(
        f"the IMDB dataset '{hub_id}'", alternatives="Pass a local copy: --data_source ../shared/data/imdb"
    )
    loaded = load_dataset(hub_id)
    for name in set(loaded) - set(IMDB_SPLITS):
        logger.info("%s: not using split '%s' (%d rows, unlabelled)", hub_id, name, len(loaded[name]))
    splits, report = {}, LoadReport(source=hub_id)
    for split in IMDB_SPLITS:
        names = loaded[split].features["label"].names
        entries = (
            Entry(row, text, names[label])
            for row, (text, label) in enumerate(
                zip(loaded[split]["text"][:], loaded[split]["label"][:], strict=True), 1
            )
        )
        splits[split], part = build_dataset(
            entries, f"{hub_id}[{split}]", IMDB_LABELS, on_bad_line, clean, "row", label_map=label_map
        )
        report.merge(part)
    return DatasetDict(splits), report.check()


def load_imdb(
    source: str | os.PathLike | None = None,
    on_bad_line: OnBadLine = "error",
    clean: bool = False,
    label_map: LabelMap = None,
    return_report: bool = False,
) -> DatasetDict | tuple[DatasetDict, LoadReport]:
    """IMDB reviews, official 25,000 / 25,000 split: ``DatasetDict(train, test)``, labels neg/pos.

    ``source``: ``None`` or a hub id loads ``stanfordnlp/imdb`` with ``datasets.load_dataset``
    (after a fail-fast network check; the unlabelled ``unsupervised`` split is not used). A local
    folder holds either the original aclImdb tree (``train/pos``, ``train/neg``, ``test/pos``,
    ``test/neg`` with ``{id}_{rating}.txt`` files; also ``FOLDER/aclImdb``) or files
    ``train.*`` and ``test.*`` (parquet / csv / tsv / jsonl, columns ``text`` and ``label`` with
    0/1 or neg/pos), like ``../shared/data/imdb``. Texts keep their ``<br />`` tags unless
    ``clean=True``. Bad rows as in :func:`~hf_spam.data.files.load_text_file`.
    ``return_report=True`` also returns the :class:`~hf_spam.data.report.LoadReport`.
    """
    dataset, report = _load_imdb(source, on_bad_line, clean, label_map)
    return (dataset, report) if return_report else dataset


def _load_imdb(
    source: str | os.PathLike | None, on_bad_line: OnBadLine, clean: bool, label_map: LabelMap
) -> tuple[DatasetDict, LoadReport]:
    if source is None or not is_local(source):
        return _load_imdb_hub(os.fspath(source or IMDB_HUB_ID), on_bad_line, clean, label_map)
    folder = Path(os.fspath(source)).expanduser()
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: IMDB needs a folder (an aclImdb tree or train/test files)")
    for root in (folder, folder / "aclImdb"):
        if all((root / split / label).is_dir() for split in IMDB_SPLITS for label in IMDB_LABELS):
            return _load_acl_imdb(root, on_bad_line, clean, label_map)
    return _load_imdb_files(folder, on_bad_line, clean, label_map)


NAMED = {"sms_spam": "sms_spam", "sms": "sms_spam", "imdb": "imdb"}


def named_dataset(name: str | os.PathLike | Sequence[str | os.PathLike]) -> str | None:
    """``sms_spam`` or ``imdb`` when ``name`` is one of the named datasets, else None."""
    if not isinstance(name, str):
        return None
    return NAMED.get(name.lower().replace("-", "_"))


def dataset_label(name: str | os.PathLike | Sequence[str | os.PathLike]) -> str:
    """A short name for run folders: ``sms_spam``, ``imdb``, a file's stem, stems joined by ``+``
    for several files; pattern characters (``data/*.csv``) are dropped, never kept in a folder name."""
    named = named_dataset(name)
    if named is not None:
        return named
    parts = name.split(",") if isinstance(name, str) else [os.fspath(part) for part in name]
    stems = [re.sub(r"[^\w.+-]+", "", Path(part.strip()).stem) for part in parts if part.strip()]
    return "+".join(stem for stem in stems if stem) or "data"


def _names_files(name: str) -> bool:
    """True when ``name`` looks like one or more paths rather than a dataset name."""
    return (
        any(char in name for char in ",*?[/" + os.sep)
        or Path(name).suffix.lower() in SUFFIXES
        or Path(name).expanduser().exists()
    )


def load_dataset_by_name(
    name: str | os.PathLike | Sequence[str | os.PathLike],
    source: str | os.PathLike | None = None,
    return_report: bool = False,
    **kwargs: Any,
) -> Dataset | DatasetDict | tuple[Dataset | DatasetDict, LoadReport]:
    """Dispatch for recipes' ``--dataset`` / ``--data_source``.

    ``name`` is ``"sms_spam"`` (-> :func:`load_sms_spam`, a Dataset), ``"imdb"`` (->
    :func:`load_imdb`, a DatasetDict train/test) or csv/tsv/jsonl/parquet files: a path, a glob
    (``data/*.csv``), paths separated by commas, or a list (-> one Dataset,
    :func:`~hf_spam.data.files.load_text_file`; ``text_column``, ``label_column``, ``label_names``
    go in ``kwargs``). ``label_map``, ``on_bad_line`` and ``clean`` work for all. ``source`` is
    where a named dataset lives (None: download it). A file that does not exist is a
    ``FileNotFoundError`` naming it ("no such file").
    ``return_report=True`` also returns the :class:`~hf_spam.data.report.LoadReport`.
    """
    named = named_dataset(name)
    if named == "sms_spam":
        return load_sms_spam(source, return_report=return_report, **kwargs)
    if named == "imdb":
        return load_imdb(source, return_report=return_report, **kwargs)
    if isinstance(name, str) and not _names_files(name):
        raise ValueError(
            f"unknown dataset {name!r}: not 'sms_spam' or 'imdb', and no such file (a dataset file ends "
            f"in {'/'.join(sorted(s.lstrip('.') for s in SUFFIXES))})"
        )
    if source is not None:
        raise ValueError(
            f"dataset {name!r} names files already; --data_source is for sms_spam and imdb "
            f"(not also source={source!r})"
        )
    return load_text_file(name, return_report=return_report, **kwargs)
