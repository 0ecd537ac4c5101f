"""Nearest neighbours on frozen embeddings (``frozen_features.py --method knn``): nothing is trained.

The training split's embeddings (the cached features of :mod:`.extract`, scaled to unit length) are the
index. A text is classified by its ``k`` most cosine-similar training texts, each with one vote; ``k`` is
chosen on validation (ties: the smaller ``k``). The class probabilities are the votes with add-one smoothing,
``(votes + 1) / (k + classes)``: the same ranking as the votes (argmax = the majority vote; a tied vote goes
to the lower class id), but no probability of exactly 0 or 1, so the log loss, calibration and the
validation threshold of the operating point stay finite. Neighbours tied on similarity are taken in
training-split order.

The run folder keeps the index (:data:`~hf_spam.run_folder.KNN_INDEX_FILE`) and what embeds a new text
(:data:`~hf_spam.run_folder.KNN_FILE`: the backbone's arguments, pooling, ``max_length``, ``k``); the
:class:`KnnScorer` built from them is what :class:`~hf_spam.serving.Predictor` and the app use.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from ..data import encode
from ..hub.access import is_local
from ..run_folder import KNN_FILE, KNN_INDEX_FILE, read_json, write_json
from .arguments import DEFAULT_K_GRID, FeatureArguments
from .backbone import Backbone, load_backbone
from .extract import embed_texts

logger = logging.getLogger(__name__)

QUERY_CHUNK = 1024  # queries compared with the whole index at a time


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (a zero row stays zero): dot products are then cosine similarities."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


@dataclass
class KnnIndex:
    """Unit-length training embeddings ``(n, dim)`` with their labels, and the ``k`` that votes."""

    embeddings: np.ndarray
    labels: np.ndarray
    num_labels: int
    k: int = 1

    @classmethod
    def build(cls, embeddings: np.ndarray, labels: Sequence[int], num_labels: int, k: int = 1) -> KnnIndex:
        """The index of ``embeddings`` (scaled to unit length here) and their class ids."""
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(embeddings) or not len(labels):
            raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
        return cls(unit_rows(embeddings), labels, num_labels, k)

    @property
    def classes_(self) -> np.ndarray:
        """The class ids, as a fitted scikit-learn classifier names them."""
        return np.arange(self.num_labels)

    def neighbours(self, queries: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` training rows most cosine-similar to each query, most similar first (ties: the earlier
        row): indices ``(n, k)`` and their similarities ``(n, k)``."""
        k = k or self.k
        if not 1 <= k <= len(self.labels):
            raise ValueError(f"k = {k}: choose 1 to {len(self.labels)} (the index's size)")
        queries = unit_rows(queries)
        indices, similarities = [], []
        for start in range(0, len(queries), QUERY_CHUNK):
            scores = queries[start : start + QUERY_CHUNK] @ self.embeddings.T  # (chunk, n)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            indices.append(top)
            similarities.append(np.take_along_axis(scores, top, axis=1))
        if not indices:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
        return np.concatenate(indices), np.concatenate(similarities)

    def votes(self, neighbours: np.ndarray) -> np.ndarray:
        """Votes per class ``(n, num_labels)`` of neighbour indices ``(n, k)``: one per neighbour."""
        labels = self.labels[neighbours]  # (n, k)
        return (labels[:, :, None] == np.arange(self.num_labels)).sum(axis=1)

    def predict_proba(self, queries: np.ndarray, k: int | None = None) -> np.ndarray:
        """Smoothed vote shares ``(votes + 1) / (k + classes)`` of the ``k`` nearest neighbours."""
        k = k or self.k
        votes = self.votes(self.neighbours(queries, k)[0])
        return (votes + 1.0) / (k + self.num_labels)

    def save(self, path: str | os.PathLike) -> None:
        """The embeddings and labels as safetensors (``k`` and the classes go in the run's knn.json)."""
        save_file({"embeddings": self.embeddings, "labels": self.labels}, str(path))

    @classmethod
    def load(cls, path: str | os.PathLike, num_labels: int, k: int) -> KnnIndex:
        """An index saved by :meth:`save`."""
        tensors = load_file(str(path))
        return cls(tensors["embeddings"], tensors["labels"], num_labels, k)


@dataclass
class KnnFit:
    """The index with the ``k`` chosen on validation, the validation accuracy of each ``k`` tried."""

    model: KnnIndex
    best_k: int
    val_accuracy_by_k: dict[str, float]
    seconds: float

    def num_parameters(self) -> int:
        """Nothing is trained."""
        return 0

    @property
    def best_value(self) -> float:
        """The best validation accuracy."""
        return max(self.val_accuracy_by_k.values())

    def details(self) -> dict[str, Any]:
        """What metrics.json records of the fit."""
        size = len(self.model.labels)
        return {"best_k": self.best_k, "val_accuracy_by_k": self.val_accuracy_by_k, "index_size": size}


def fit_knn(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_val: np.ndarray,
    y_val: Sequence[int],
    num_labels: int,
    k_grid: Sequence[int] = DEFAULT_K_GRID,
) -> KnnFit:
    """Index the training embeddings; choose ``k`` from ``k_grid`` by validation accuracy of the vote (ties:
    the smaller ``k``); values of ``k`` above the training split's size are left out (logged)."""
    start = time.perf_counter()
    index = KnnIndex.build(x_train, y_train, num_labels)
    ks = sorted({int(k) for k in k_grid if 1 <= k <= len(index.labels)})
    dropped = sorted({int(k) for k in k_grid} - set(ks))
    if dropped:
        logger.info("k %s left out: the training split has %d rows", dropped, len(index.labels))
    if not ks:
        raise ValueError(f"--k_grid {list(k_grid)}: no k from 1 to {len(index.labels)} (the training rows)")
    nearest = index.neighbours(x_val, ks[-1])[0]
    y_val = np.asarray(y_val)
    by_k = {
        str(k): float((index.votes(nearest[:, :k]).argmax(axis=1) == y_val).mean()) for k in ks
    }  # argmax: a tied vote goes to the lower class id, as predict_proba's argmax
    index.k = next(k for k in ks if by_k[str(k)] == max(by_k.values()))
    seconds = time.perf_counter() - start
    logger.info("kNN validation accuracy by k: %s; chosen k = %d", by_k, index.k)
    return KnnFit(index, index.k, by_k, seconds)


def between_vote_shares(threshold: float | None, k: int, num_labels: int) -> float | None:
    """A threshold on a smoothed vote share moved half a vote down, between two possible shares: it decides
    every possible share as ``threshold`` does, and float32 rounding in serving cannot flip a decision (the
    shares are discrete, so a test text's share often equals the threshold chosen on validation)."""
    if threshold is None:
        return None
    return max(threshold - 0.5 / (k + num_labels), 0.0)


@dataclass
class KnnRecord:
    """What :data:`~hf_spam.run_folder.KNN_FILE` holds: how a new text is embedded, and how it is voted on."""

    backbone: dict[str, Any]  # the FeatureArguments that rebuild the backbone (model, weights, seed, ...)
    pooling: str
    max_length: int
    k: int
    id2label: dict[int, str]
    text_pair_column: str | None = None
    index_size: int = 0
    metric: str = "cosine"
    smoothing: str = "(votes + 1) / (k + classes)"
    format: int = 1


BACKBONE_FIELDS = ("model", "implementation", "weights", "tokenizer", "dtype", "seed", "batch_size")


def _portable(source: str | None) -> str | None:
    """A local path made absolute (the run is then served from any working directory); a hub id as it is."""
    if source is None or not is_local(source):
        return source
    return str(Path(source).expanduser().resolve())


def save_knn_run(
    run_dir: Path,
    fit: KnnFit,
    args: FeatureArguments,
    info: dict[str, Any],
    id2label: dict[int, str],
    text_pair_column: str | None,
) -> None:
    """Write the index and the record that rebuilds the scorer (:class:`KnnScorer`) into ``run_dir``."""
    backbone = {name: getattr(args, name) for name in BACKBONE_FIELDS}
    backbone["model"], backbone["tokenizer"] = _portable(args.model), _portable(args.tokenizer)
    record = KnnRecord(
        backbone, info["pooling"], info["max_length"], fit.best_k, id2label, text_pair_column,
        len(fit.model.labels),
    )  # fmt: skip
    fit.model.save(run_dir / KNN_INDEX_FILE)
    write_json(run_dir / KNN_FILE, asdict(record))


class KnnScorer:
    """A saved nearest-neighbour run as a scorer for :class:`~hf_spam.serving.Predictor`: embeds texts with
    the run's frozen backbone and votes with its index; ``logits`` are the log of the smoothed vote shares."""

    def __init__(self, record: KnnRecord, index: KnnIndex, backbone: Backbone) -> None:
        self.record, self.index, self.backbone = record, index, backbone
        self.id2label = {int(k): v for k, v in record.id2label.items()}

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: torch.device | None = None) -> KnnScorer:
        """The scorer of the kNN run in ``run_dir`` (the backbone loads when it first embeds a text)."""
        data = read_json(run_dir, KNN_FILE)
        if not data:
            raise FileNotFoundError(f"{Path(run_dir) / KNN_FILE}: no such file (not a kNN run)")
        record = KnnRecord(**data)
        index = KnnIndex.load(Path(run_dir) / KNN_INDEX_FILE, len(record.id2label), record.k)
        backbone = load_backbone(FeatureArguments(method="knn", **record.backbone), device)
        return cls(record, index, backbone)

    def embeddings(
        self, texts: list[str], text_pairs: list[str] | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        """The texts' pooled embeddings ``(n, dim)``, computed as the run computed its index."""
        return embed_texts(
            self.backbone, texts, text_pairs, self.record.pooling, self.record.max_length,
            batch_size or self.record.backbone.get("batch_size", 32),
        )  # fmt: skip

    def logits(self, texts: list[str], text_pairs: list[str] | None = None) -> torch.Tensor:
        """Log smoothed vote shares ``(n, num_labels)`` of the ``k`` nearest training texts."""
        probabilities = self.index.predict_proba(self.embeddings(texts, text_pairs))
        return torch.from_numpy(np.log(probabilities))

    def describe(self, texts: list[str], text_pairs: list[str] | None = None) -> list[dict[str, Any]]:
        """How each text was read: its token count, cut to the run's ``max_length`` (one window)."""
        lengths = [len(ids) for ids in encode(self.backbone.tokenizer, texts, text_pairs)["input_ids"]]
        return [
            {"long_text": "truncate", "tokens": n, "chunks": 1, "truncated": n > self.record.max_length}
            for n in lengths
        ]
