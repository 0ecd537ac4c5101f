"""Tokenise a Dataset / DatasetDict once, cached on disk by fingerprint; no padding here.

``Dataset.map`` only caches to disk for datasets backed by arrow files, and the parsed SMS / IMDB
datasets live in memory. So :func:`tokenize` gives ``map`` an explicit cache file named by a hash
of (the input's fingerprint, the tokenizer, ``max_length``, the text column): the same data with
the same tokenizer is tokenised once, whichever process asks, and loaded from
``$HF_SPAM_CACHE/tokenized/`` afterwards.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TypeVar

import datasets
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, List, Value
from datasets.fingerprint import Hasher
from transformers import PreTrainedTokenizerBase

from .cache import get_cache_dir
from .pairs import PAIR_COLUMN, PAIR_SEPARATOR, encode, uses_pair_encoding

logger = logging.getLogger(__name__)

T = TypeVar("T", Dataset, DatasetDict)
#: Used when a tokenizer declares no real limit (``model_max_length`` is a huge sentinel).
FALLBACK_MAX_LENGTH = 1024
_VERSION = "tokenize-v1"  # bump when the output of _encode changes, so old cache files are not reused


def resolve_max_length(tokenizer: PreTrainedTokenizerBase, max_length: int | None = None) -> int:
    """``max_length`` if given, else the tokenizer's ``model_max_length`` (1024 if it has no real limit)."""
    if max_length is not None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, not {max_length}")
        return max_length
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit > 1_000_000:
        logger.warning("tokenizer has no model_max_length; truncating to %d tokens", FALLBACK_MAX_LENGTH)
        return FALLBACK_MAX_LENGTH
    return int(limit)


def _encode(
    batch: dict, tokenizer: PreTrainedTokenizerBase, text_column: str, max_length: int, segments: bool
) -> dict:
    """Token ids and mask truncated to ``max_length``, plus ``num_tokens``: the length before truncation;
    with a ``text_pair`` column the pairs as :func:`~hf_spam.data.pairs.encode` reads them, and their
    ``token_type_ids`` when ``segments``."""
    texts, pairs = batch[text_column], batch.get(PAIR_COLUMN)
    keys = ["input_ids", "attention_mask", *(["token_type_ids"] if segments else [])]
    full = encode(tokenizer, texts, pairs, truncation=False, return_attention_mask=True, verbose=False)
    out = {key: full[key] for key in keys}
    num_tokens = [len(row) for row in out["input_ids"]]
    long = [i for i, n in enumerate(num_tokens) if n > max_length]
    if long:  # let the tokenizer truncate (it keeps special tokens such as [SEP] where it should)
        cut = encode(
            tokenizer, [texts[i] for i in long], None if pairs is None else [pairs[i] for i in long],
            truncation=True, max_length=max_length, return_attention_mask=True,
        )  # fmt: skip
        for j, i in enumerate(long):
            for key in keys:
                out[key][i] = cut[key][j]
    return out | {"num_tokens": num_tokens}


def has_segments(dataset: Dataset, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether tokenising ``dataset`` gives ``token_type_ids``: sentence pairs read with the tokenizer's pair
    encoding, by a model that takes segment ids."""
    return (
        PAIR_COLUMN in dataset.column_names
        and uses_pair_encoding(tokenizer)
        and "token_type_ids" in tokenizer.model_input_names
    )


def tokenize_cache_file(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    text_column: str = "text",
    keep_text: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Path, str]:
    """The cache file (and the fingerprint of the result) for tokenising ``dataset`` this way."""
    parts = [_VERSION, dataset._fingerprint, Hasher.hash(tokenizer), max_length, text_column, keep_text]
    if PAIR_COLUMN in dataset.column_names:  # how pairs are read (the tokenizer decides) and joined
        parts += [PAIR_COLUMN, PAIR_SEPARATOR, uses_pair_encoding(tokenizer)]
    fingerprint = Hasher.hash(parts)
    return get_cache_dir(cache_dir) / "tokenized" / f"{fingerprint}.arrow", fingerprint


def _tokenize_one(
    dataset: Dataset, tokenizer, max_length, text_column, num_proc, keep_text, cache_dir
) -> Dataset:
    if text_column not in dataset.column_names:
        raise ValueError(f"no text column {text_column!r}; the columns are {dataset.column_names}")
    cache_file, fingerprint = tokenize_cache_file(
        dataset, tokenizer, max_length, text_column, keep_text, cache_dir
    )
    caching = datasets.is_caching_enabled()
    if caching:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        hit = cache_file.exists()
        logger.info("tokenize: %s %s", "loading cached" if hit else "writing", cache_file)
    features = dataset.features.copy()
    text_columns = [text_column, *([PAIR_COLUMN] if PAIR_COLUMN in features else [])]
    if not keep_text:
        for column in text_columns:
            del features[column]
    segments = has_segments(dataset, tokenizer)
    features.update(
        {
            "input_ids": List(Value("int32")),
            "attention_mask": List(Value("int8")),
            **({"token_type_ids": List(Value("int8"))} if segments else {}),
            "num_tokens": Value("int32"),
        }
    )
    fn_kwargs = {"tokenizer": tokenizer, "text_column": text_column, "max_length": max_length}
    result = dataset.map(
        _encode,
        batched=True,
        fn_kwargs=fn_kwargs | {"segments": segments},
        remove_columns=[] if keep_text else text_columns,
        features=features,
        num_proc=num_proc,
        cache_file_name=str(cache_file) if caching else None,
        new_fingerprint=fingerprint,
        desc=f"tokenizing (max_length={max_length})",
    )
    lengths = result.with_format("arrow")["num_tokens"]
    truncated = pc.sum(pc.greater(lengths, max_length)).as_py() or 0
    longest = pc.max(lengths).as_py() or 0
    logger.info(
        "tokenized %d rows: %d truncated to max_length=%d (longest text: %d tokens)",
        len(result), truncated, max_length, longest,
    )  # fmt: skip
    return result


def tokenize(
    dataset: T,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int | None = None,
    text_column: str = "text",
    num_proc: int | None = None,
    keep_text: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> T:
    """Tokenise with ``Dataset.map(batched=True)``; same type out (Dataset or DatasetDict).

    Adds ``input_ids`` (int32), ``attention_mask`` (always) and ``num_tokens`` (the length
    *before* truncation, so truncation is never silent: the count of truncated rows is logged),
    keeps ``label`` and other columns, and drops ``text_column`` unless ``keep_text``. Sentence pairs (a
    ``text_pair`` column, dropped with the text) are read as :mod:`hf_spam.data.pairs` says, with
    ``token_type_ids`` where the pair encoding gives segment ids. Truncates
    to ``max_length`` (default: the tokenizer's ``model_max_length``) and does **not** pad:
    :func:`~hf_spam.data.batching.make_dataloader` pads per batch. Results are cached under
    ``cache_dir`` (default ``$HF_SPAM_CACHE``, else ``~/.cache/hf_spam``) and reused by fingerprint.
    """
    max_length = resolve_max_length(tokenizer, max_length)
    args = (tokenizer, max_length, text_column, num_proc, keep_text, cache_dir)
    if isinstance(dataset, DatasetDict):
        return DatasetDict({name: _tokenize_one(part, *args) for name, part in dataset.items()})
    return _tokenize_one(dataset, *args)
