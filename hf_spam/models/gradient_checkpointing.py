"""Activation ("gradient") checkpointing for every classifier: keep each block's input, recompute the rest.

``--gradient_checkpointing`` trades compute for memory: in training each transformer block stores only its
input and recomputes its activations in the backward pass, non-reentrant (``torch.utils.checkpoint`` with
``use_reentrant=False``: dropout masks are replayed, frozen inputs need no ``requires_grad`` trick, and it
composes with FSDP). Our GPT-2 does it per :class:`~hf_spam.models.gpt2.blocks.Block`
(:meth:`~hf_spam.models.gpt2.GPT2.gradient_checkpointing_enable`); transformers models through their own
``gradient_checkpointing_enable``. The loss and the gradients are those of the plain model.
"""

from __future__ import annotations

import logging

from torch import nn

from .gpt2 import GPT2

logger = logging.getLogger(__name__)

CHECKPOINT_KWARGS = {"use_reentrant": False}


def checkpointed_model(model: nn.Module) -> nn.Module:
    """The module that owns the blocks' checkpointing: the classifier itself, under a peft wrapper too."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def enable_gradient_checkpointing(model: nn.Module) -> nn.Module:
    """Turn activation checkpointing on for ``model`` (our GPT-2 or a transformers model, peft-wrapped or
    not); returns ``model``. A model that cannot checkpoint is a ``ValueError`` naming its class."""
    inner = checkpointed_model(model)
    if isinstance(inner, GPT2):
        inner.gradient_checkpointing_enable(dict(CHECKPOINT_KWARGS))
    elif not getattr(inner, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"--gradient_checkpointing: {type(inner).__name__} does not support activation checkpointing"
        )
    else:
        if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5.2x (the old name warns)
            inner.activation_checkpointing_enable(activation_checkpointing_kwargs=dict(CHECKPOINT_KWARGS))
        else:
            inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(CHECKPOINT_KWARGS))
        # transformers also makes the embeddings' output require a gradient (reentrant checkpointing needs
        # it); non-reentrant does not, and with frozen lower blocks it would run the backward through them all
        inner.disable_input_require_grads()
    logger.info("gradient checkpointing: on for %s (each block recomputed in backward)", type(inner).__name__)
    return model


def is_gradient_checkpointing(model: nn.Module) -> bool:
    """True when ``model`` (or the classifier under its peft wrapper) checkpoints its blocks."""
    inner = checkpointed_model(model)
    if isinstance(inner, GPT2):
        return inner.gradient_checkpointing
    return any(getattr(m, "gradient_checkpointing", False) is True for m in inner.modules())
