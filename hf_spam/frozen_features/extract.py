"""Frozen features: each split through a frozen backbone, pooled, cached on disk.

Each split is tokenised (:func:`hf_spam.data.tokenize`, cached), sorted by length, run in batches through
the backbone (eval and inference mode) with ``Dataset.map``, pooled with
:func:`~hf_spam.models.remote.modeling_hf_spam.pool` and put back in order. The features are cached in
``$HF_SPAM_CACHE/features/<fingerprint>.arrow``, the fingerprint covering the tokenised split (data,
tokenizer, ``max_length``), :meth:`~.backbone.Backbone.identity` (weights, dtype) and the pooling: a second
run with the same backbone and data neither runs nor loads the model (:data:`EXTRACTION_CALLS` counts the
batches run).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from datasets import Dataset, DatasetDict, Features, List, Value
from datasets.fingerprint import Hasher

from ..data import (
    DataArguments,
    PaddingCollator,
    encode,
    example_lengths,
    get_cache_dir,
    resolve_max_length,
    tokenize,
)
from ..models.remote.modeling_hf_spam import pool
from .arguments import FeatureArguments
from .backbone import Backbone, load_backbone, resolve_pooling

logger = logging.getLogger(__name__)

FEATURES_VERSION = "features-v1"  # bump when extraction changes its output, so old cache files are not reused
EXTRACTION_CALLS = 0  # batches run through a backbone by extract_features in this process (cache hits: none)


def features_cache_file(
    tokens: Dataset, backbone: Backbone, pooling: str, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, str]:
    """The cache file (and the fingerprint of the result) for ``tokens``' features from ``backbone``."""
    fingerprint = Hasher.hash([FEATURES_VERSION, tokens._fingerprint, backbone.identity(), pooling])
    return get_cache_dir(cache_dir) / "features" / f"{fingerprint}.arrow", fingerprint


def _embed_batch(batch: dict, backbone: Backbone, pooling: str, collate: PaddingCollator) -> dict:
    """One ``Dataset.map`` batch: pad, run the frozen backbone, pool over real tokens."""
    global EXTRACTION_CALLS
    EXTRACTION_CALLS += 1
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in batch]
    examples = [
        dict(zip(keys, values, strict=True)) for values in zip(*(batch[k] for k in keys), strict=True)
    ]
    inputs = collate(examples)
    with torch.inference_mode():
        hidden = backbone.hidden_states(
            inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids")
        )
        pooled = pool(hidden, inputs["attention_mask"], pooling)  # type: ignore[arg-type]
    return {"features": pooled.float().cpu().numpy()}


def embed_texts(
    backbone: Backbone,
    texts: list[str],
    text_pairs: list[str] | None = None,
    pooling: str | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Pooled embeddings ``(n, dim)`` of texts (sentence pairs: ``text_pairs``), computed as
    :func:`extract_features` computes a split's: tokenised alike (cut to ``max_length``), batched longest
    first, padded on the right. No cache: for new texts (a kNN run's queries)."""
    pooling = resolve_pooling(pooling, backbone)
    max_length = resolve_max_length(backbone.tokenizer, max_length)
    encoded = encode(backbone.tokenizer, texts, text_pairs, truncation=True, max_length=max_length)
    segments = text_pairs is not None and "token_type_ids" in backbone.tokenizer.model_input_names
    keys = ["input_ids", "attention_mask", *(["token_type_ids"] if segments else [])]
    order = np.argsort([-len(ids) for ids in encoded["input_ids"]], kind="stable")
    collate = PaddingCollator(backbone.tokenizer, "longest", padding_side="right")
    out = np.empty((len(texts), backbone.hidden_size), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = {key: [encoded[key][i] for i in rows] for key in keys}
        out[rows] = _embed_batch(batch, backbone, pooling, collate)["features"]
    return out


def extract_features(
    tokens: Dataset,
    backbone: Backbone,
    pooling: str | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Dataset, bool]:
    """Columns ``label`` and ``features`` (float32 vectors) for a tokenised split, and whether they came
    from the cache. Rows keep ``tokens``' order; batches are formed longest first to cut padding."""
    pooling = resolve_pooling(pooling, backbone)
    cache_file, fingerprint = features_cache_file(tokens, backbone, pooling, cache_dir)
    caching = datasets.is_caching_enabled()
    hit = caching and cache_file.is_file()
    if caching:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
    logger.info("features (%s pooling): %s %s", pooling, "loading cached" if hit else "writing", cache_file)
    order = np.argsort(-np.asarray(example_lengths(tokens)), kind="stable")
    features = Features(
        {"label": tokens.features["label"], "features": List(Value("float32"), length=backbone.hidden_size)}
    )
    collate = PaddingCollator(backbone.tokenizer, "longest", padding_side="right")
    out = tokens.select(order, keep_in_memory=True).map(
        _embed_batch,
        batched=True,
        batch_size=batch_size,
        fn_kwargs={"backbone": backbone, "pooling": pooling, "collate": collate},
        remove_columns=[c for c in tokens.column_names if c != "label"],
        features=features,
        cache_file_name=str(cache_file) if caching else None,
        new_fingerprint=fingerprint,
        desc=f"extracting features ({Path(backbone.args.model).name}, {pooling})",
    )
    return out.select(np.argsort(order), keep_in_memory=True), hit


def feature_matrix(features: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: the feature vectors as a float32 ``(n, dim)`` array, and the labels."""
    table = features.with_format("numpy")
    return np.asarray(table["features"][:], dtype=np.float32), np.asarray(table["label"][:])


def embedding_inputs(
    args: FeatureArguments, data_args: DataArguments, splits: DatasetDict
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any], Backbone]:
    """``(X, y)`` per split from the frozen backbone (cached), what was done, and the backbone."""
    if (data_args.padding, data_args.padding_side, data_args.group_by_length) != ("dynamic", "right", False):
        logger.warning(
            "--padding/--padding_side/--group_by_length are ignored: batches are sorted by length "
            "and padded on the right to their longest text (pooling reads the attention mask)"
        )
    backbone = load_backbone(args)
    max_length = resolve_max_length(backbone.tokenizer, data_args.max_length)
    if backbone.context_length and max_length > backbone.context_length:
        logger.warning(
            "max_length %d > the model's context %d: using the latter", max_length, backbone.context_length
        )
        max_length = backbone.context_length
    tokens = tokenize(splits, backbone.tokenizer, max_length=max_length, cache_dir=args.cache_dir)
    start = time.perf_counter()
    inputs, hits = {}, {}
    for name, part in tokens.items():
        features, hits[name] = extract_features(part, backbone, args.pooling, args.batch_size, args.cache_dir)
        inputs[name] = feature_matrix(features)
    info = {
        "extraction_seconds": time.perf_counter() - start,
        "cache_hit": all(hits.values()),
        "cache_hit_by_split": hits,
        "pooling": resolve_pooling(args.pooling, backbone),
        "max_length": max_length,
        "feature_dim": backbone.hidden_size,
    }
    return inputs, info, backbone
