"""FSDP through accelerate: the plugin completed for our models, and the sharded model read back whole.

``accelerate launch --use_fsdp`` (``--fsdp_version 2`` for FSDP2, the one to use with this torch; or a
config file with ``distributed_type: FSDP``, see ``configs/``) makes the ``Accelerator`` build accelerate's
``FullyShardedDataParallelPlugin`` from the environment, and ``accelerator.prepare`` shards the model.
Before that, :func:`configure_fsdp` fills in what the launch left open:

- **auto-wrap by block class**: with no wrap policy chosen (or ``TRANSFORMER_BASED_WRAP`` without class
  names) every transformer block is an FSDP unit of its own: our GPT-2's ``Block``, transformers'
  ``GPT2Block``, ``LlamaDecoderLayer``, ``BertLayer`` ..., found from the model as ``set_trainable`` finds
  its blocks;
- under FSDP1, ``use_orig_params`` is turned on: the optimizer is made before sharding, and frozen
  parameters (``--trainable last_block``, LoRA) share units with trained ones;
- **activation checkpointing**: ``--gradient_checkpointing`` is the model's own (per block, non-reentrant:
  it composes with FSDP2's hooks); with accelerate's ``fsdp_activation_checkpointing`` also on, accelerate's
  wrapper does it and the model's own stays off (:func:`fsdp_checkpoints_activations`).

Mixed precision is accelerate's (``--mixed_precision bf16`` becomes FSDP's ``MixedPrecisionPolicy``).
After training, :func:`gather_model` gathers the full state dict (every process takes part) into a plain
copy of the model made before sharding (:func:`meta_copy`: no weights are copied), so the run folder holds
the model in the same format as an unsharded run; :func:`trainable_state_dict` and
:func:`load_trainable_state_dict` move the trained parameters (the best weights) as full tensors. These
three work on any model: sharded by FSDP1 or FSDP2 (``torch.distributed.checkpoint.state_dict``), or not.
The frozen-prefix cache is refused under FSDP (:mod:`.prefix_cache`).
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import torch
from accelerate import Accelerator, FullyShardedDataParallelPlugin
from accelerate.utils import DistributedType
from torch import nn

from ..models.trainable import model_parts
from .prefix_cache import base_classifier

logger = logging.getLogger(__name__)

# what wrappers (FSDP1 units, activation-checkpoint wrappers, torch.compile) add to parameter names
_NAME_WRAPPERS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def is_fsdp(accelerator: Accelerator) -> bool:
    """True when the launch shards the model with FSDP (either version)."""
    return accelerator.distributed_type == DistributedType.FSDP


def fsdp_version(accelerator: Accelerator) -> int | None:
    """1 or 2 under FSDP, else None."""
    return accelerator.state.fsdp_plugin.fsdp_version if is_fsdp(accelerator) else None


def is_sharded(model: nn.Module) -> bool:
    """True when ``model`` (a prepared model; compiled or not) is sharded by FSDP1 or FSDP2."""
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    model = getattr(model, "_orig_mod", model)
    return isinstance(model, (FSDPModule, FullyShardedDataParallel))


def canonical_name(name: str) -> str:
    """A parameter name without what FSDP1, checkpoint wrappers or ``torch.compile`` add to it."""
    for wrapper in _NAME_WRAPPERS:
        name = name.replace(wrapper, "")
    return name


def block_class_names(model: nn.Module) -> list[str]:
    """The class names of the model's transformer blocks (under a peft wrapper too): the FSDP units."""
    return sorted({type(block).__name__ for block in model_parts(base_classifier(model))[0]})


def configure_fsdp(accelerator: Accelerator, model: nn.Module) -> dict[str, Any] | None:
    """Under FSDP, complete accelerate's plugin for ``model`` before ``accelerator.prepare``
    (:func:`complete_fsdp_plugin`); returns what the run shards with (logged), or None without FSDP."""
    if not is_fsdp(accelerator):
        return None
    plugin = complete_fsdp_plugin(accelerator.state.fsdp_plugin, model)
    if plugin.fsdp_version == 1:
        logger.warning("FSDP1 (accelerate's default): hf_spam is tested with FSDP2, pass --fsdp_version 2")
    record = {
        "fsdp_version": plugin.fsdp_version,
        "wrapped": plugin.transformer_cls_names_to_wrap if plugin.auto_wrap_policy else None,
        "use_orig_params": plugin.use_orig_params,
        "activation_checkpointing": plugin.activation_checkpointing,
        "mixed_precision": accelerator.mixed_precision,
    }
    logger.info("FSDP: %s", record)
    return record


def complete_fsdp_plugin(
    plugin: FullyShardedDataParallelPlugin, model: nn.Module
) -> FullyShardedDataParallelPlugin:
    """What the launch left open in accelerate's FSDP ``plugin`` (built from the environment), set for
    ``model``: no wrap policy chosen (no ``FSDP_AUTO_WRAP_POLICY``) becomes transformer-based wrapping, and
    transformer-based wrapping without class names wraps the model's block classes; FSDP1 gets
    ``use_orig_params``. Returns ``plugin``."""
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    if plugin.auto_wrap_policy is None and os.environ.get("FSDP_AUTO_WRAP_POLICY") is None:
        plugin.auto_wrap_policy = transformer_auto_wrap_policy
    if plugin.auto_wrap_policy is transformer_auto_wrap_policy and not plugin.transformer_cls_names_to_wrap:
        plugin.transformer_cls_names_to_wrap = block_class_names(model)
    if plugin.fsdp_version == 1:
        # FSDP1 flattens each unit's parameters: the optimizer (made before sharding) keeps the original
        # ones, and frozen and trained ones may share a unit, only with use_orig_params
        plugin.use_orig_params = True
    return plugin


def fsdp_checkpoints_activations(accelerator: Accelerator) -> bool:
    """True when accelerate's own FSDP activation checkpointing is on (``--fsdp_activation_checkpointing``):
    it wraps every block, so the model's own ``--gradient_checkpointing`` would recompute twice."""
    return is_fsdp(accelerator) and bool(accelerator.state.fsdp_plugin.activation_checkpointing)


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (module tree, config, hooks) whose parameters are on the meta device, so it costs
    no memory; buffers are copied to the CPU (they are small, and non-persistent ones such as rotary
    frequencies are in no state dict). Make it before sharding; :func:`gather_model` fills it."""
    memo: dict[int, Any] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = buffer.detach().to("cpu", copy=True)
    return copy.deepcopy(model, memo)


def full_state_dict(model: nn.Module, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` as whole CPU tensors: sharded, under the names of the model before
    wrapping (every process must call it; only the main process gets the tensors, the others ``{}``); a
    plain module, under its own names.
    ``trainable_only``: the parameters that require a gradient, no frozen ones and no buffers."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(
            full_state_dict=True, cpu_offload=True, ignore_frozen_params=trainable_only
        )
        state = get_model_state_dict(model, options=options)
    else:
        state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    if trainable_only and state:
        rename = canonical_name if is_sharded(model) else str
        trained = {rename(n) for n, p in model.named_parameters() if p.requires_grad}
        state = {name: tensor for name, tensor in state.items() if name in trained}
    return state


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained parameters of ``model`` as whole, contiguous CPU tensors (see :func:`full_state_dict`)."""
    return {name: tensor.contiguous() for name, tensor in full_state_dict(model, trainable_only=True).items()}


def load_trainable_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load whole tensors (some of the parameters, by plain name) into ``model`` (sharded, or a plain
    module); sharded, every process passes the same ``state`` and keeps its own shard of it."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        # a copy: torch replaces the dict's entries by the shards
        set_model_state_dict(model, dict(state), options=StateDictOptions(full_state_dict=True, strict=False))
    else:
        model.load_state_dict(state, strict=False)


def gather_model(model: nn.Module, skeleton: nn.Module | None, is_main_process: bool) -> nn.Module | None:
    """The trained model whole, to save. A sharded ``model`` is gathered into ``skeleton`` (its
    :func:`meta_copy`): every process must call this; the main process gets the model, the others None.
    A plain module is returned as it is."""
    if not is_sharded(model):
        return model
    if skeleton is None:
        raise ValueError("a sharded model is gathered into the meta_copy made before sharding it")
    state = full_state_dict(model)
    if not is_main_process:
        return None
    skeleton.load_state_dict(state, assign=True)
    left = [name for name, param in skeleton.named_parameters() if param.is_meta]
    if left:
        raise RuntimeError(f"the gathered state dict left parameters unset: {left[:5]}")
    return skeleton.train(model.training)
