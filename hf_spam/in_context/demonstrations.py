"""Which labelled examples a prompt shows: one balanced random set, or each query's nearest neighbours.

- :func:`balanced_random`: ``k`` training rows, as even across classes as ``k`` allows, drawn with the
  seed and shown in a seeded random order; the same set for every query (so its cache is shared).
- :class:`NearestNeighbours` (Liu et al., 2021, "What makes good in-context examples for GPT-3?"): the
  ``k`` training texts most similar to the query by cosine similarity of mean-pooled embeddings, shown
  least similar first, so the most similar one sits next to the query.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..models.remote.modeling_hf_spam import pool

logger = logging.getLogger(__name__)

POOLING = "mean"  # over real tokens: what sentence-embedding models are trained for


def balanced_random(labels: Sequence[int], k: int, seed: int) -> list[int]:
    """Indices of ``k`` rows of ``labels``: ``k // n_classes`` of each class, the remainder to classes
    drawn at random (a class with too few rows gives what it has, the others fill in), in random order."""
    labels = np.asarray(labels)
    if k >= len(labels):
        if k > len(labels):
            logger.warning("--k %d: the training split has %d rows; showing them all", k, len(labels))
        return np.random.default_rng(seed).permutation(len(labels)).tolist()
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)).tolist() for c in classes}
    quota = {c: k // len(classes) for c in classes}
    for c in rng.permutation(classes)[: k % len(classes)]:
        quota[c] += 1
    chosen: list[int] = []
    for c in classes:
        chosen += pools[c][: quota[c]]
        pools[c] = pools[c][quota[c] :]
    while len(chosen) < k:  # some class had fewer rows than its quota
        c = next(c for c in rng.permutation(classes) if pools[c])
        chosen.append(pools[c].pop(0))
    return [int(i) for i in rng.permutation(chosen)]


class Embedder:
    """Mean-pooled, L2-normalised embeddings of texts from a model's last hidden states.

    ``model``: a transformers base model (``AutoModel``, or a causal LM's ``base_model``), returning
    ``last_hidden_state``.
    """

    def __init__(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, max_length: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(
            model.config, "n_positions", None
        )
        self.max_length = min(x for x in (max_length, limit, tokenizer.model_max_length, 512) if x)

    @torch.inference_mode()
    def __call__(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """``(len(texts), dim)`` float32 unit vectors, on the CPU; batches formed longest first."""
        device = next(self.model.parameters()).device
        lengths = [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out = torch.zeros(len(texts), self.model.config.hidden_size)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            inputs = self.tokenizer(
                [texts[i] for i in batch], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(device)  # fmt: skip
            hidden = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            pooled = pool(hidden.last_hidden_state.float(), inputs["attention_mask"], POOLING)
            out[batch] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        return out


def nearest(queries: torch.Tensor, pool_vectors: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, k)`` indices of the ``k`` rows of ``pool_vectors`` with the highest cosine similarity to each
    query, most similar first (ties: the lower index)."""
    queries = torch.nn.functional.normalize(queries.float(), dim=-1)
    pool_vectors = torch.nn.functional.normalize(pool_vectors.float(), dim=-1)
    similarity = queries @ pool_vectors.T  # (n, m)
    k = min(k, pool_vectors.shape[0])
    # a stable sort on the negated similarity keeps index order among ties
    return torch.sort(-similarity, dim=1, stable=True).indices[:, :k]


class NearestNeighbours:
    """Each query's ``k`` most similar training texts (see the module docstring)."""

    def __init__(self, embedder: Embedder, pool_vectors: torch.Tensor, k: int, batch_size: int = 32) -> None:
        self.embedder, self.pool_vectors, self.k, self.batch_size = embedder, pool_vectors, k, batch_size

    def __call__(self, texts: list[str]) -> list[list[int]]:
        """Per text, the indices of its demonstrations in prompt order: least similar first."""
        if not texts:
            return []
        found = nearest(self.embedder(texts, self.batch_size), self.pool_vectors, self.k)
        return [row.flip(0).tolist() for row in found]
