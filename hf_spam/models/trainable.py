"""Which parameters of a classifier train: the parts of any classifier, and the freezing policies.

:func:`model_parts` finds the transformer blocks, the final norm(s) and the head of our
:class:`~hf_spam.models.classifier.GPT2Classifier` and of transformers' ``*ForSequenceClassification``
models (GPT-2, Llama-family decoders, BERT encoders), so one policy (:func:`set_trainable`) serves all.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, get_args

from torch import nn

from .gpt2 import GPT2

logger = logging.getLogger(__name__)

FREEZING = ("all", "last_block", "last_two_blocks", "head")  # what set_trainable leaves trainable
PEFT_METHODS = (
    "lora",
    "ia3",
    "prompt_tuning",
    "p_tuning",
    "prefix_tuning",
)  # through peft: it decides what trains
Trainable = Literal[FREEZING + PEFT_METHODS]
TRAINABLE: tuple[str, ...] = get_args(Trainable)


def model_parts(model: nn.Module) -> tuple[nn.ModuleList, list[nn.Module], list[nn.Module]]:
    """The transformer blocks, the final norm(s) after them, and the head modules of a classifier.

    Works for :class:`GPT2Classifier` and transformers ``*ForSequenceClassification`` models (GPT-2, Llama
    family, BERT family...): the head is every direct child of the model that is not its base model, plus
    the base model's ``pooler`` when it has one.
    """
    base = getattr(model, "base_model", model)
    if isinstance(model, GPT2):
        base = model.transformer
    blocks = None
    for path in ("h", "layers", "layer", "encoder.layer", "encoder.layers", "transformer.layer", "blocks"):
        blocks = _get(base, path)
        if isinstance(blocks, nn.ModuleList):
            break
    else:
        raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}")
    norms = [
        m for name in ("ln_f", "norm", "final_layer_norm") if isinstance(m := _get(base, name), nn.Module)
    ]
    head = [child for name, child in model.named_children() if child is not base and name != "transformer"]
    if isinstance(pooler := _get(base, "pooler"), nn.Module):
        head.append(pooler)
    if not head:
        raise ValueError(f"cannot find the classification head of {type(model).__name__}")
    return blocks, norms, head


def _get(module: nn.Module, path: str) -> Any:
    for name in path.split("."):
        module = getattr(module, name, None)
        if module is None:
            return None
    return module


def set_trainable(model: nn.Module, policy: Trainable) -> dict[str, int]:
    """Freeze the model except what ``policy`` names; returns trainable and total parameter counts.

    ``all``: everything. ``last_block`` (the book's default): the last block, the final norm and the head.
    ``last_two_blocks``: the last two blocks, the final norm and the head. ``head``: the head alone.
    ``lora`` (a peft method, :data:`PEFT_METHODS`): the model must already be wrapped by
    :func:`hf_spam.models.adapters.build_adapter_classifier` (peft chose what trains: the adapter and the
    head); this only counts.
    """
    if policy not in TRAINABLE:
        raise ValueError(f"unknown trainable policy {policy!r}; choose one of {TRAINABLE}")
    if policy in PEFT_METHODS:
        if not hasattr(model, "peft_config"):
            raise ValueError(
                f"trainable={policy}: wrap the model with "
                "hf_spam.models.adapters.build_adapter_classifier first"
            )
        return parameter_counts(model)
    blocks, norms, head = model_parts(model)
    model.requires_grad_(policy == "all")
    if policy != "all":
        chosen = list(head)
        if policy != "head":
            chosen += norms + list(blocks[-(1 if policy == "last_block" else 2) :])
        for module in chosen:
            module.requires_grad_(True)
    counts = parameter_counts(model)
    logger.info("trainable=%s: %d of %d parameters", policy, counts["trainable"], counts["total"])
    return counts


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable and total (unique) parameter counts.

    With peft ``modules_to_save`` (a LoRA head), the frozen original head peft keeps beside the trained copy
    is not counted: the total is what the model computes with.
    """
    params = [p for name, p in model.named_parameters() if ".original_module." not in name]
    return {
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "total": sum(p.numel() for p in params),
    }
