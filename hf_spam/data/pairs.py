"""Sentence pairs (``--text_pair_column``): a dataset then has a ``text_pair`` column beside ``text``.

How a model reads a pair depends on its tokenizer (:func:`uses_pair_encoding`):

- an encoder's tokenizer (BERT, RoBERTa: one with a separator token that its pair template inserts) encodes
  the two texts as a pair, ``[CLS] text [SEP] text_pair [SEP]``, with segment ids (``token_type_ids``: 0 for
  the first text, 1 for the second) where the model has them;
- a decoder's tokenizer (GPT-2, SmolLM2: no separator token) and TF-IDF read the two texts joined by
  :data:`PAIR_SEPARATOR` (a newline), one text.

:func:`encode` is the one call that tokenises texts, with or without pairs: training, features, serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

PAIR_COLUMN = "text_pair"  # the second text of a pair, beside "text", in every loaded dataset that has pairs
PAIR_SEPARATOR = "\n"  # between the two texts where a model (decoders, TF-IDF) reads them as one text


def uses_pair_encoding(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer encodes pairs with a template of its own: it has a separator token and puts
    more special tokens around a pair than around one text (BERT: ``[CLS] a [SEP] b [SEP]``)."""
    return tokenizer.sep_token is not None and tokenizer.num_special_tokens_to_add(
        pair=True
    ) > tokenizer.num_special_tokens_to_add(pair=False)


def join_pairs(texts: Sequence[str], text_pairs: Sequence[str] | None) -> list[str]:
    """Each text and its pair joined by :data:`PAIR_SEPARATOR` (the texts as they are without pairs)."""
    if text_pairs is None:
        return list(texts)
    if len(texts) != len(text_pairs):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    return [f"{a}{PAIR_SEPARATOR}{b}" for a, b in zip(texts, text_pairs, strict=True)]


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    **kwargs: Any,
) -> Any:
    """``tokenizer(texts, ...)``; with ``text_pairs``, the tokenizer's pair encoding (segment ids included
    when the model has them) or, for a tokenizer without one, the texts joined (:func:`join_pairs`).
    ``kwargs`` go to the tokenizer (``truncation``, ``max_length``, ...)."""
    if text_pairs is not None and uses_pair_encoding(tokenizer):
        if len(texts) != len(text_pairs):
            raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
        return tokenizer(list(texts), list(text_pairs), **kwargs)
    return tokenizer(join_pairs(texts, text_pairs), **kwargs)


def pair_record(column: str | None, tokenizer: PreTrainedTokenizerBase | None) -> dict[str, Any] | None:
    """What metrics.json records about sentence pairs: the column and how the model read them (None without
    pairs); ``tokenizer`` None: no model (TF-IDF), the texts joined."""
    if column is None:
        return None
    if tokenizer is not None and uses_pair_encoding(tokenizer):
        segments = "token_type_ids" in tokenizer.model_input_names
        read_as = "pair encoding" + (" with segment ids" if segments else "")
    else:
        read_as = f"joined by {PAIR_SEPARATOR!r}"
    return {"column": column, "read_as": read_as}
