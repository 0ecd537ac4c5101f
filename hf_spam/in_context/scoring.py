"""Score label words: the model's log-probability of each class's answer tokens after each prompt.

``score(i, c) = sum_j log p(answer_c[j] | prompt_i, answer_c[:j])`` -- the whole label word, every one of
its tokens, read from one forward pass per prompt and distinct answer: the pass over ``prompt_i +
answer_c[:-1]`` also serves every class whose ``answer[:-1]`` starts it (one pass per prompt for one-token
words, or for ``ham`` beside ``sp|am``). Never by generating text.

Fast where it can be: the shared prefix of the prompts (:class:`~.prompts.Prompt`) runs once and its
key/value cache (transformers' ``DynamicCache``) is copied under every batch of bodies, which start at
position ``len(prefix)``; the bodies are sorted by length and right-padded per batch. ``reuse_prefix=False``
runs every full prompt instead, and ``group_by_length=False`` keeps the prompts' order: the same scores
(the benchmark ``bench/in_context.py`` times all three).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache

from .prompts import Prompt

logger = logging.getLogger(__name__)

KeyValues = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ScoringStats:
    """What the scorer ran: forward passes, token positions computed, prefixes cached and their seconds."""

    forwards: int = 0
    tokens: int = 0
    prefixes: int = 0
    prefix_seconds: float = 0.0


def cache_argument(model: nn.Module) -> str:
    """The name under which the model's forward takes a key/value cache (``cache`` since transformers 5.x
    renamed ``past_key_values``)."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def prefix_key_values(model: nn.Module, ids: tuple[int, ...], device: torch.device) -> KeyValues:
    """Keys and values of every layer for ``ids`` (one row): ``[(keys, values)]``, each ``(1, H, T, D)``."""
    out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


def expanded_cache(model: nn.Module, key_values: KeyValues, rows: int) -> DynamicCache:
    """A fresh ``DynamicCache`` holding ``key_values`` for ``rows`` rows (the stored tensors are views and
    are never written: a layer's update concatenates into new tensors)."""
    data = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in key_values]
    return DynamicCache(data, config=model.config)


@torch.inference_mode()
def score_prompts(
    model: nn.Module,
    prompts: list[Prompt],
    answers: list[list[int]],
    batch_size: int = 16,
    reuse_prefix: bool = True,
    group_by_length: bool = True,
    stats: ScoringStats | None = None,
    prefixes: dict[tuple[int, ...], KeyValues] | None = None,
) -> torch.Tensor:
    """``(len(prompts), len(answers))`` float64 summed log-probabilities of each answer after each prompt
    (see the module docstring). ``model``: a transformers causal LM in eval mode. ``prefixes``: key/values of
    prefixes already run (filled with those this call runs), for a caller that scores in several calls."""
    device = next(model.parameters()).device
    stats = stats if stats is not None else ScoringStats()
    keep = prefixes is not None  # else each prefix's key/values are dropped once its bodies are scored
    prefixes = prefixes if prefixes is not None else {}
    rows: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}  # (cached part, sequence) -> row
    needs: dict[int, list[tuple[int, int, list[int], int]]] = defaultdict(
        list
    )  # row -> [(i, c, answer, start)]
    for i, prompt in enumerate(prompts):
        cached = prompt.prefix[:-1] if reuse_prefix and len(prompt.prefix) > 1 else ()
        head = (prompt.prefix + prompt.body)[len(cached) :]  # the prefix's last token predicts an empty body
        sequences = [head + tuple(answer[:-1]) for answer in answers]
        for c, answer in enumerate(answers):
            # the longest sequence that starts with this one holds its logits too (causal attention)
            longest = max((s for s in sequences if s[: len(sequences[c])] == sequences[c]), key=len)
            row = rows.setdefault((cached, longest), len(rows))
            needs[row].append((i, c, answer, len(head) - 1))  # position len(head) - 1 predicts answer[0]
    keys = list(rows)
    by_prefix: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for row, (cached, _) in enumerate(keys):
        by_prefix[cached].append(row)
    scores = torch.zeros(len(prompts), len(answers), dtype=torch.float64)
    for cached, members in by_prefix.items():
        key_values = None
        if cached:
            if cached not in prefixes:
                start = time.perf_counter()
                prefixes[cached] = prefix_key_values(model, cached, device)
                stats.prefix_seconds += time.perf_counter() - start
                stats.prefixes, stats.forwards = stats.prefixes + 1, stats.forwards + 1
                stats.tokens += len(cached)
            key_values = prefixes[cached]
        if group_by_length:
            members = sorted(members, key=lambda r: -len(keys[r][1]))
        for first in range(0, len(members), batch_size):
            batch = members[first : first + batch_size]
            sequences = [keys[r][1] for r in batch]
            lo = min(need[3] for r in batch for need in needs[r])  # logits from there on only
            logits = _forward(model, sequences, len(cached), key_values, device, lo)
            stats.forwards, stats.tokens = stats.forwards + 1, stats.tokens + sum(map(len, sequences))
            for j, r in enumerate(batch):
                for i, c, answer, start in needs[r]:
                    table = torch.log_softmax(
                        logits[j, start - lo : start - lo + len(answer)].float(), dim=-1
                    )
                    picked = table[torch.arange(len(answer)), torch.tensor(answer, device=table.device)]
                    scores[i, c] = picked.double().sum().item()
        if not keep:
            prefixes.pop(cached, None)
    return scores


def _forward(
    model: nn.Module, sequences: list[tuple[int, ...]], offset: int, key_values: KeyValues | None,
    device: torch.device, keep_from: int = 0,
) -> torch.Tensor:  # fmt: skip
    """Logits ``(B, T - keep_from, V)`` of right-padded ``sequences`` that follow ``offset`` cached
    positions, from position ``keep_from`` of the sequences on (the LM head runs on those only)."""
    longest = max(map(len, sequences))
    ids = torch.zeros(len(sequences), longest, dtype=torch.long)
    mask = torch.zeros(len(sequences), offset + longest, dtype=torch.long)
    mask[:, :offset] = 1
    for j, seq in enumerate(sequences):
        ids[j, : len(seq)] = torch.tensor(seq)
        mask[j, offset : offset + len(seq)] = 1
    positions = torch.arange(offset, offset + longest).expand(len(sequences), -1)
    kwargs: dict[str, Any] = {
        "use_cache": False,
        "logits_to_keep": torch.arange(keep_from, longest, device=device),
    }
    if key_values is not None:
        kwargs |= {
            cache_argument(model): expanded_cache(model, key_values, len(sequences)),
            "use_cache": True,
        }
    return model(
        input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device), **kwargs
    ).logits
