"""Our GPT-2 as a sequence classifier: a classification head on pooled hidden states.

:class:`GPT2Classifier` replaces the LM head with ``score = Linear(emb_dim, num_labels, bias=False)``, the
layout of transformers' ``GPT2ForSequenceClassification``, so a trained classifier saves in that format and
``transformers.pipeline("text-classification", model=dir)`` loads it. Pooling (``last``/``first``/``mean``
real token) is :func:`~hf_spam.models.remote.modeling_hf_spam.pool`, the code saved beside a model that
pools other than transformers' GPT-2 does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from .gpt2 import GPT2, GPT2Config
from .gpt2.weights import (
    config_from_transformers,
    config_to_transformers,
    from_transformers_state_dict,
    read_weights,
    to_transformers_state_dict,
)
from .remote.modeling_hf_spam import (
    POOLINGS,
    HfSpamGPT2Config,
    HfSpamGPT2ForSequenceClassification,
    pool,
    pool_index,
)

logger = logging.getLogger(__name__)

Pooling = Literal[POOLINGS]  # "last", "first", "mean": defined once, in the self-contained remote code


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
        hf_config = HfSpamGPT2Config.from_dict(config_dict(directory))
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


def config_dict(directory: str | os.PathLike) -> dict[str, Any]:
    """The folder's config.json as a dict: read without running any custom code it names."""
    from transformers import PretrainedConfig

    return PretrainedConfig.get_config_dict(directory)[0]


HfSpamGPT2Config.register_for_auto_class()  # save_pretrained then writes the code and config.json's auto_map
HfSpamGPT2ForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
