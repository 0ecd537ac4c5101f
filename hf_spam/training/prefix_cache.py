"""Frozen-prefix cache: run the frozen lower blocks once per example, train and evaluate the rest.

With ``--trainable last_block`` (the book's default) the embeddings and the first ``n - 1`` blocks never
change, yet every epoch would run them again for every example. When the lower part is frozen and
deterministic (no trained parameter and no dropout below the boundary), :func:`plan_cache` finds the
boundary — the index of the first block with a trained parameter — and a :class:`~.prefix_store.PrefixStore`
keeps each
example's hidden states at that boundary on disk (unpadded, one row per token, in the dtype the model
computed them in). Training and evaluation then feed those states to the upper blocks: the model's own
forward runs unchanged (masks, positions, pooling, head), except that the frozen blocks return the cached
states instead of computing them (:class:`FrozenPrefix`). Pad positions get zeros: the attention masks
keep them out of every real token, so the loss is that of the full model up to float rounding.

The store is keyed by a fingerprint of the frozen part (its weights, the model class and config, the depth,
the dtype and mixed precision); inside it each example is keyed by a hash of its token ids, so a store is
shared by every run, seed and epoch that uses the same frozen part, and new examples (more data, another
tokenizer or ``max_length``, which give other ids) are computed and added as a new shard, never rebuilt.
Under ``accelerate`` with several processes each process computes an equal share of the missing examples
and writes its own shard; after a barrier every process reads them all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import DistributedType
from torch import nn

from ..data.cache import get_cache_dir
from ..models.classifier import GPT2Classifier
from ..models.fingerprint import update_with_tensors
from ..models.gpt2.blocks import at_rows
from ..models.trainable import model_parts
from .prefix_store import PrefixStore, example_key

logger = logging.getLogger(__name__)

FEED_KEY = "frozen_hidden"  # the batch key holding the cached hidden states (B, T, D)
# under FSDP every frozen block's forward gathers its sharded weights, a collective all processes run
# together, while the cache gives each process its own share of examples and skips the blocks' forward
FSDP_REASON = (
    "FSDP shards the frozen blocks: their forward is a collective every process runs on the same batches, "
    "which a per-process share of the cache is not; use DDP (accelerate launch --multi_gpu) to cache"
)
FORMAT_VERSION = 2  # 2: tensors hashed as hf_spam.models.fingerprint.update_with_tensors does
# config entries that do not change what the frozen part computes (labels, names, the head's pooling)
_CONFIG_IGNORED = {
    "id2label", "label2id", "num_labels", "_name_or_path", "transformers_version", "architectures",
    "problem_type", "hf_spam", "auto_map", "dtype", "torch_dtype", "pad_token_id", "classifier_dropout",
}  # fmt: skip


def base_classifier(model: nn.Module) -> nn.Module:
    """The classifier itself: under a peft wrapper, the model peft injected its adapters into."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@dataclass
class CachePlan:
    """Whether the frozen prefix can be cached: ``depth`` frozen blocks (0: no), and why."""

    depth: int
    reason: str

    @property
    def eligible(self) -> bool:
        """True when at least one block is below the boundary."""
        return self.depth > 0


def _upper_modules(model: nn.Module, depth: int) -> list[nn.Module]:
    blocks, norms, head = model_parts(model)
    return list(blocks[depth:]) + norms + head


def _lower_named_modules(model: nn.Module, depth: int) -> Iterator[tuple[str, nn.Module]]:
    """Modules of the frozen part: everything but the upper blocks, the final norms and the head."""
    upper = {id(m) for top in _upper_modules(model, depth) for m in top.modules()}
    for name, module in model.named_modules():
        if id(module) not in upper:
            yield name, module


def _lower_parameters(model: nn.Module, depth: int) -> list[tuple[str, torch.Tensor]]:
    upper = {id(p) for top in _upper_modules(model, depth) for p in top.parameters()}
    return [(n, p) for n, p in model.named_parameters() if id(p) not in upper]


def _dropout_in(module: nn.Module) -> float:
    """The dropout probability a module applies in training mode (0 for none)."""
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return float(module.p)
    rates = [v for k, v in vars(module).items() if "dropout" in k and isinstance(v, float)]
    return max(rates, default=0.0)  # e.g. an SDPA attention's dropout_p, a Llama attention_dropout


def prompt_learning_method(model: nn.Module) -> str | None:
    """peft's prompt-learning type of ``model`` (``PROMPT_TUNING``, ``P_TUNING``, ``PREFIX_TUNING``), or
    None: those methods feed trained virtual tokens (or keys and values) into the blocks."""
    config = (getattr(model, "peft_config", None) or {}).get(getattr(model, "active_adapter", "default"))
    return str(config.peft_type.value) if getattr(config, "is_prompt_learning", False) else None


def positions_follow_the_mask(model: nn.Module) -> bool:
    """True when the model counts positions from each row's first real token (our GPT-2; transformers
    decoders through :func:`hf_spam.models.build.positions_from_mask`), so left padding moves nothing."""
    inner = base_classifier(model)
    base = getattr(inner, "base_model", inner)
    return isinstance(inner, GPT2Classifier) or getattr(base, "_hf_spam_positions_from_mask", False)


def plan_cache(model: nn.Module, padding_side: str = "right") -> CachePlan:
    """Where the frozen prefix ends, judged from the model itself (which parameters train, which dropout).

    The boundary is the first block holding a trained parameter (all blocks for a head-only fine-tune).
    Not eligible (``depth`` 0): a prompt method (trained virtual tokens or keys and values enter every
    block), a trained parameter below the boundary (embeddings, ``--trainable all``, LoRA or (IA)^3 on block
    0), dropout above zero anywhere below it, or left padding on a model whose positions count from the
    first column (RoBERTa): its states then depend on the padding, which a per-example cache cannot know.
    """
    inner = base_classifier(model)
    prompt = prompt_learning_method(model)
    if prompt is not None:
        what = "every layer's keys and values" if prompt == "PREFIX_TUNING" else "the first block's input"
        return CachePlan(
            0, f"{prompt.lower()} changes {what} (trained virtual tokens): nothing below is frozen"
        )
    if padding_side == "left" and not positions_follow_the_mask(model):
        return CachePlan(
            0, f"left padding shifts {type(inner).__name__}'s absolute positions: use --padding_side right"
        )
    blocks = model_parts(inner)[0]
    depth = next(
        (i for i, block in enumerate(blocks) if any(p.requires_grad for p in block.parameters())), len(blocks)
    )
    if depth == 0:
        return CachePlan(0, "block 0 is trained (--trainable all, or LoRA in every block): nothing is frozen")
    trained = [name for name, p in _lower_parameters(inner, depth) if p.requires_grad]
    if trained:
        return CachePlan(0, f"parameters below block {depth} are trained ({trained[0]}, ...)")
    for name, module in _lower_named_modules(inner, depth):
        if (p := _dropout_in(module)) > 0:
            return CachePlan(
                0, f"dropout {p} in the frozen part ({name}) makes it random: pass --dropout 0 to cache it"
            )
    return CachePlan(
        depth, f"blocks 0-{depth - 1} of {len(blocks)} and the embeddings are frozen, no dropout"
    )


def prefix_fingerprint(model: nn.Module, depth: int, mixed_precision: str = "no") -> str:
    """sha256 of what the frozen part computes with: its weights, class, config, depth and precision."""
    inner = base_classifier(model)
    config = inner.config
    values = config.to_dict() if hasattr(config, "to_dict") else vars(config)
    digest = hashlib.sha256()
    header = {
        "format": FORMAT_VERSION,
        "class": type(inner).__name__,
        "config": {k: v for k, v in sorted(values.items()) if k not in _CONFIG_IGNORED},
        "depth": depth,
        "mixed_precision": mixed_precision,
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    update_with_tensors(digest, _lower_parameters(inner, depth))
    return digest.hexdigest()


def estimated_bytes(examples: Sequence[Sequence[int]], model: nn.Module) -> int:
    """Bytes a store needs for these examples: tokens x hidden size x element size."""
    inner = base_classifier(model)
    dim = getattr(inner.config, "hidden_size", None) or inner.config.emb_dim
    element = next(model_parts(inner)[0][0].parameters()).element_size()
    return sum(len(ids) for ids in examples) * dim * element


class _StopForward(Exception):
    """Raised by the capture hook: nothing above the boundary needs computing."""


class FrozenPrefix:
    """The frozen blocks of ``model`` below ``depth``: captured once per example, then skipped.

    :meth:`capture` runs the model up to the boundary and returns the hidden states there. After
    :meth:`attach`, each frozen block returns the states given by :meth:`feeding` instead of computing;
    :meth:`detach` restores them (the saved model is the ordinary full model).
    """

    def __init__(self, model: nn.Module, depth: int) -> None:
        blocks = model_parts(base_classifier(model))[0]
        if not 0 < depth <= len(blocks):
            raise ValueError(f"frozen depth {depth} is not within 1..{len(blocks)}")
        self.model, self.depth = model, depth
        self.frozen = list(blocks[:depth])
        self._feed: Any = None
        self._returns_tuple = False

    @torch.no_grad()
    def capture(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, T, D)`` at the boundary for a padded batch (the model's forward, stopped)."""
        captured: list[torch.Tensor] = []

        def hook(module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
            # the block's own forward on every position: our classifier asks its last block for the pooled
            # rows only (``rows=``), but the cache keeps every token's states
            output = type(module).forward(module, *args, **{k: v for k, v in kwargs.items() if k != "rows"})
            self._returns_tuple = isinstance(output, tuple)
            captured.append(output[0] if self._returns_tuple else output)
            raise _StopForward

        handle = self.frozen[-1].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            self.model(input_ids=input_ids, attention_mask=attention_mask)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"block {self.depth - 1} did not run in {type(self.model).__name__}'s forward")
        return captured[0]

    def _skip(self, *args: Any, rows: torch.Tensor | None = None, **kwargs: Any) -> Any:
        if self._feed is None:
            raise RuntimeError(
                f"blocks 0-{self.depth - 1} are served from the frozen-prefix cache: "
                f"the batch needs '{FEED_KEY}' (use hf_spam.training.prefix_cache.forward_logits)"
            )
        feed = self._feed
        if rows is not None:  # our classifier's last block, asked for the pooled position of each row only
            feed = at_rows(feed, rows)
        return (feed,) if self._returns_tuple else feed

    def attach(self) -> None:
        """Make every frozen block return the fed hidden states (an instance-level ``forward``)."""
        for block in self.frozen:
            block.forward = self._skip

    def detach(self) -> None:
        """Give the frozen blocks their own forward back."""
        for block in self.frozen:
            block.__dict__.pop("forward", None)

    @contextlib.contextmanager
    def feeding(self, hidden: torch.Tensor) -> Iterator[None]:
        """Within this block, the frozen blocks return ``hidden``."""
        self._feed = hidden
        try:
            yield
        finally:
            self._feed = None


def forward_logits(
    model: nn.Module, batch: dict[str, torch.Tensor], prefix: FrozenPrefix | None = None
) -> torch.Tensor:
    """``model(input_ids, attention_mask).logits`` (and ``token_type_ids`` where the batch has them: sentence
    pairs), fed from the cache when the batch carries it."""
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in batch}
    feed = batch.get(FEED_KEY)
    if feed is None:
        return model(**inputs).logits
    if prefix is None:
        raise ValueError(f"the batch carries '{FEED_KEY}' but no FrozenPrefix is attached to feed it")
    with prefix.feeding(feed):
        return model(**inputs).logits


@dataclass
class CachedCollator:
    """Wraps a padding collator: adds ``frozen_hidden`` ``(B, T, D)``, each example's cached states placed
    where its attention mask is 1 (left or right padding alike), zeros on pads."""

    collate: Callable[[Sequence[dict]], dict[str, torch.Tensor]]
    store: PrefixStore

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch = self.collate(features)
        mask = batch["attention_mask"].bool()
        rows = [self.store.get(example_key(f["input_ids"])) for f in features]
        lengths = mask.sum(-1).tolist()
        if lengths != [len(r) for r in rows]:
            raise RuntimeError(f"cached lengths {[len(r) for r in rows]} != attention mask {lengths}")
        hidden = rows[0].new_zeros(*mask.shape, rows[0].shape[-1])
        hidden[mask] = torch.cat(rows)
        batch[FEED_KEY] = hidden
        return batch


def ensure_cached(
    prefix: FrozenPrefix,
    store: PrefixStore,
    examples: Sequence[Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
    process_index: int = 0,
    num_processes: int = 1,
    barrier: Callable[[], None] = lambda: None,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    batch_tokens: int = 8192,
) -> PrefixStore:
    """Compute the examples (token-id lists) missing from ``store`` and add them; sets ``reused`` and
    ``computed``.

    Each process takes every ``num_processes``-th missing example (sorted by length, batched up to
    ``batch_tokens`` padded tokens), writes its own shard, and after ``barrier`` every process re-reads the
    store. The model runs in eval mode (its frozen part has no dropout, so this is what training computes).
    """
    keys: dict[str, Sequence[int]] = {}
    for ids in examples:
        keys.setdefault(example_key(ids), ids)
    missing = sorted((k for k in keys if k not in store), key=lambda k: (len(keys[k]), k))
    store.reused, store.computed = len(keys) - len(missing), len(missing)
    barrier()  # every process has listed what is missing before any shard is added
    mine = missing[process_index::num_processes]
    _compute(prefix, store, mine, keys, pad_id, device, autocast, batch_tokens)
    barrier()
    if missing:
        store.reload()
    left = [k for k in missing if k not in store]  # e.g. another run changed the store while we listed it
    if left:
        _compute(prefix, store, left, keys, pad_id, device, autocast, batch_tokens)
        store.reload()
    return store


def _compute(
    prefix: FrozenPrefix,
    store: PrefixStore,
    mine: list[str],
    keys: dict[str, Sequence[int]],
    pad_id: int,
    device: torch.device,
    autocast: Callable[[], Any],
    batch_tokens: int,
) -> None:
    """Capture the boundary states of the examples ``mine`` (sorted by length) and write them as one shard."""
    if not mine:
        return
    was_training = prefix.model.training
    prefix.model.eval()
    out_keys, out_hidden = [], []
    try:
        for chunk in _token_batches(mine, keys, batch_tokens):
            rows = [torch.tensor(keys[k], dtype=torch.long) for k in chunk]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)], mask[i, : len(r)] = r, 1
            with autocast():
                hidden = prefix.capture(ids.to(device), mask.to(device))
            out_keys += chunk
            out_hidden += [hidden[i, : len(r)].detach().cpu() for i, r in enumerate(rows)]
    finally:
        prefix.model.train(was_training)
    store.write_shard(out_keys, out_hidden)


def _token_batches(keys: list[str], ids: dict[str, Sequence[int]], batch_tokens: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for key in keys:  # sorted by length: the last one added is the longest
        if chunk and (len(chunk) + 1) * len(ids[key]) > batch_tokens:
            yield chunk
            chunk = []
        chunk.append(key)
    if chunk:
        yield chunk


@dataclass
class PrefixCache:
    """The frozen prefix of a run's model, attached, and the store its loaders' batches are fed from."""

    prefix: FrozenPrefix
    store: PrefixStore

    def collator(self, collate: Callable[[Sequence[dict]], dict[str, torch.Tensor]]) -> CachedCollator:
        """``collate`` with each batch's cached states added (:class:`CachedCollator`)."""
        return CachedCollator(collate, self.store)


def build_prefix_cache(
    model: nn.Module,
    examples: Sequence[Sequence[int]],
    accelerator: Any,
    mode: str,
    pad_id: int,
    padding_side: str = "right",
    segments: bool = False,
) -> tuple[PrefixCache | None, dict[str, Any]]:
    """With ``--cache_frozen auto`` and a frozen, deterministic lower part (:func:`plan_cache`): compute the
    boundary states of the ``examples`` (token-id lists) missing from the store, and attach the prefix so
    the frozen blocks are skipped (feed batches through :meth:`PrefixCache.collator`). ``segments``: the
    examples carry segment ids (sentence pairs), which the cache cannot key: not used.

    Returns the cache (None when not used) and the record metrics.json keeps (why, depth, store, examples
    reused and computed, seconds).
    """
    if mode == "off":
        logger.info("frozen-prefix cache: off (--cache_frozen off)")
        return None, {"used": False, "reason": "--cache_frozen off", "seconds": 0.0}
    if getattr(accelerator, "distributed_type", None) == DistributedType.FSDP:
        logger.info("frozen-prefix cache: not used: %s", FSDP_REASON)
        return None, {"used": False, "reason": FSDP_REASON, "seconds": 0.0}
    if segments:
        reason = "segment ids (sentence pairs) change the frozen states, and the cache is keyed by token ids"
        logger.info("frozen-prefix cache: not used: %s", reason)
        return None, {"used": False, "reason": reason, "seconds": 0.0}
    plan = plan_cache(model, padding_side)
    if not plan.eligible:
        logger.info("frozen-prefix cache: not used: %s", plan.reason)
        return None, {"used": False, "reason": plan.reason, "seconds": 0.0}
    start = time.perf_counter()
    need, free = estimated_bytes(examples, model), shutil.disk_usage(get_cache_dir()).free
    if need > 0.9 * free:
        reason = f"it needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB are free in {get_cache_dir()}"
        logger.warning("frozen-prefix cache: not used: %s (set HF_SPAM_CACHE to a larger disk)", reason)
        return None, {"used": False, "reason": reason, "seconds": 0.0}
    model.to(accelerator.device)
    prefix = FrozenPrefix(model, plan.depth)
    store = PrefixStore.open(prefix_fingerprint(model, plan.depth, accelerator.mixed_precision))
    ensure_cached(
        prefix, store, examples, pad_id=pad_id, device=accelerator.device,
        process_index=accelerator.process_index, num_processes=accelerator.num_processes,
        barrier=accelerator.wait_for_everyone, autocast=accelerator.autocast,
    )  # fmt: skip
    prefix.attach()
    seconds = time.perf_counter() - start
    logger.info(
        "frozen-prefix cache: used (%s); %s: %d examples reused, %d computed in %.1f s",
        plan.reason, store.root, store.reused, store.computed, seconds,
    )  # fmt: skip
    record = {
        "used": True, "reason": plan.reason, "depth": plan.depth, "store": str(store.root),
        "examples_reused": store.reused, "examples_computed": store.computed, "seconds": seconds,
    }  # fmt: skip
    return PrefixCache(prefix, store), record
