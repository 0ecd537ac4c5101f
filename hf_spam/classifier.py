"""Sequence classifiers: our GPT-2 with a classification head, pooling, and trainable-layer policies.

:class:`GPT2Classifier` replaces the LM head with ``score = Linear(emb_dim, num_labels, bias=False)``, the
layout of transformers' ``GPT2ForSequenceClassification``, so a trained classifier saves in that format and
``transformers.pipeline("text-classification", model=dir)`` loads it. The same trainable policies apply to
transformers models (GPT-2, Llama-family decoders, BERT encoders) through :func:`set_trainable`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from .convert import (
    config_from_transformers,
    config_to_transformers,
    from_transformers_state_dict,
    read_weights,
    to_transformers_state_dict,
)
from .gpt2 import GPT2, GPT2Config
from .remote.modeling_hf_spam import (
    POOLINGS,
    HfSpamGPT2Config,
    HfSpamGPT2ForSequenceClassification,
    pool,
    pool_index,
)

logger = logging.getLogger(__name__)

Pooling = Literal["last", "first", "mean"]
Trainable = Literal["all", "last_block", "last_two_blocks", "head", "lora"]
TRAINABLE: tuple[str, ...] = ("all", "last_block", "last_two_blocks", "head", "lora")


class GPT2Classifier(GPT2):
    """GPT-2 whose LM head is replaced by a classification head ``score`` reading one pooled vector.

    ``model(input_ids, attention_mask)`` returns a ``SequenceClassifierOutput`` with ``logits`` of shape
    ``(B, num_labels)``, as transformers' classifiers do, so one training loop serves both.
    """

    def __init__(
        self,
        config: GPT2Config,
        num_labels: int = 2,
        pooling: Pooling = "last",
        id2label: dict[int, str] | None = None,
    ) -> None:
        super().__init__(config)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        del self.lm_head  # the classifier has no LM head, so the embedding is no longer tied
        self.score = nn.Linear(config.emb_dim, num_labels, bias=False)
        nn.init.normal_(self.score.weight, std=0.02)
        self.num_labels = num_labels
        self.pooling = pooling
        self.id2label = id2label or {i: f"LABEL_{i}" for i in range(num_labels)}

    @classmethod
    def from_gpt2(
        cls, gpt2: GPT2, num_labels: int = 2, pooling: Pooling = "last", **kwargs: Any
    ) -> GPT2Classifier:
        """A classifier with ``gpt2``'s body (weights copied) and a freshly initialised head."""
        with torch.device("meta"):
            model = cls(gpt2.config, num_labels, pooling, **kwargs)
        head = nn.Linear(
            gpt2.config.emb_dim, num_labels, bias=False, device=gpt2.transformer.wte.weight.device
        )
        nn.init.normal_(head.weight, std=0.02)
        state = {k: v for k, v in gpt2.state_dict().items() if not k.startswith("lm_head.")}
        state["score.weight"] = head.weight.detach().to(gpt2.transformer.wte.weight.dtype)
        model.load_state_dict({k: v.clone() for k, v in state.items()}, assign=True)
        return model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        """Class logits ``(B, num_labels)``.

        ``last``/``first`` pooling reads one position per row, so the last block computes that position
        only (its keys and values still come from every token): the same logits, a much cheaper top block.
        """
        if self.pooling == "mean" or len(self.transformer.h) == 0:
            hidden = self.hidden_states(input_ids, attention_mask, position_ids)
            return SequenceClassifierOutput(logits=self.score(pool(hidden, attention_mask, self.pooling)))
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device)
        rows = pool_index(mask, self.pooling)
        pooled = self.hidden_states(input_ids, attention_mask, position_ids, last_rows=rows)[:, 0]  # (B, C)
        return SequenceClassifierOutput(logits=self.score(pooled))

    def generate(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise TypeError("a GPT2Classifier has no LM head and cannot generate text")

    def to_transformers(self) -> Any:
        """An equivalent transformers classifier (same weights, same predictions).

        ``last`` pooling: a ``GPT2ForSequenceClassification``, which pools the rightmost token that is not
        ``pad_token_id`` — our ``last`` for texts that do not contain the pad (= end-of-text) token.
        ``first``/``mean``: a :class:`~hf_spam.remote.modeling_hf_spam.HfSpamGPT2ForSequenceClassification`,
        whose ``save_pretrained`` writes its code beside the weights: transformers loads that folder only
        with ``trust_remote_code=True`` (and then pools as we do), never silently as a last-token GPT-2.
        """
        from transformers import GPT2ForSequenceClassification

        hf_config = config_to_transformers(self.config)
        model_class = GPT2ForSequenceClassification
        if self.pooling != "last":
            hf_config = HfSpamGPT2Config(pooling=self.pooling, **hf_config.to_diff_dict())
            model_class = HfSpamGPT2ForSequenceClassification
        hf_config.num_labels = self.num_labels
        hf_config.id2label = dict(self.id2label)
        hf_config.label2id = {v: k for k, v in self.id2label.items()}
        hf_config.pad_token_id = self.config.eos_token_id
        hf_config.hf_spam = {
            "class": type(self).__name__,
            "pooling": self.pooling,
            "causal": self.config.causal,
        }
        with torch.device("meta"):
            hf_model = model_class(hf_config)
        hf_model.load_state_dict(to_transformers_state_dict(self.state_dict()), assign=True)
        return hf_model.train(self.training)

    @classmethod
    def from_transformers_folder(
        cls, directory: str | os.PathLike, dtype: torch.dtype | None = None
    ) -> GPT2Classifier:
        """Load a classifier saved by :meth:`save_pretrained` (a ``GPT2ForSequenceClassification`` folder).

        Returned in eval mode, as transformers' ``from_pretrained`` does.
        """
        hf_config = HfSpamGPT2Config.from_dict(_config_dict(directory))
        extra = getattr(hf_config, "hf_spam", None) or {}
        config = config_from_transformers(hf_config)
        config.causal = extra.get("causal", config.causal)
        id2label = {int(k): v for k, v in hf_config.id2label.items()}
        with torch.device("meta"):
            model = cls(config, hf_config.num_labels, extra.get("pooling", "last"), id2label)
        state = from_transformers_state_dict(read_weights(Path(directory)))
        if dtype is not None:
            state = {k: v.to(dtype) for k, v in state.items()}
        model.load_state_dict(state, assign=True)
        return model.eval()  # like transformers' from_pretrained


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
    ``lora``: the model must already be wrapped by :func:`hf_spam.lora.build_lora_classifier` (peft chose
    what trains: the adapters and the head); this only counts.
    """
    if policy not in TRAINABLE:
        raise ValueError(f"unknown trainable policy {policy!r}; choose one of {TRAINABLE}")
    if policy == "lora":
        if not any("lora_" in name for name, _ in model.named_parameters()):
            raise ValueError("trainable=lora: wrap the model with hf_spam.lora.build_lora_classifier first")
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


def load_classifier(directory: str | os.PathLike) -> nn.Module:
    """A saved classifier: ours when the folder says so (``hf_spam`` in config.json), else transformers'.

    ``directory`` is a folder or a hub repo id (downloaded through the hub cache). A LoRA run folder (a peft
    adapter) loads as a ``peft.PeftModel`` on its rebuilt base (:func:`hf_spam.lora.load_lora_classifier`).
    """
    from transformers import AutoModelForSequenceClassification

    from .hub import resolve_run
    from .lora import is_lora_run, load_lora_classifier
    from .models import positions_from_mask

    directory = resolve_run(directory)
    if is_lora_run(directory):
        return load_lora_classifier(directory)
    if (_config_dict(directory).get("hf_spam") or {}).get("class") == GPT2Classifier.__name__:
        return GPT2Classifier.from_transformers_folder(directory)
    return positions_from_mask(AutoModelForSequenceClassification.from_pretrained(directory))


def _config_dict(directory: str | os.PathLike) -> dict[str, Any]:
    """The folder's config.json as a dict: read without running any custom code it names."""
    from transformers import PretrainedConfig

    return PretrainedConfig.get_config_dict(directory)[0]


HfSpamGPT2Config.register_for_auto_class()  # save_pretrained then writes the code and config.json's auto_map
HfSpamGPT2ForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
