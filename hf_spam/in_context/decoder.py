"""The decoder that reads the prompts: any transformers causal LM, or our GPT-2 run on its exact export.

Our GPT-2 (``--implementation hf_spam``) is built as the fine-tuning recipes build it (a size name or a
GPT-2 folder, pretrained or random with the seed) and exported to ``transformers.GPT2LMHeadModel``
(:meth:`~hf_spam.models.gpt2.GPT2.to_transformers`, the same weights; tested equal to 1e-5), whose
key/value cache the scorer reuses. Weights are frozen; the model is in eval mode.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerBase

from ..frozen_features.backbone import DTYPES
from ..hub.access import from_pretrained_offline_first
from ..models.arguments import ModelArguments
from ..models.build import gpt2_config, tokenizer_for
from ..models.gpt2 import GPT2

logger = logging.getLogger(__name__)


def load_decoder(
    model: str,
    implementation: str,
    weights: str,
    tokenizer: str | None,
    seed: int,
    dtype: str = "float32",
    device: torch.device | None = None,
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The causal LM (eval mode, no gradients, on ``device``) and its tokenizer."""
    tok = tokenizer_for(ModelArguments(model=model, tokenizer=tokenizer, implementation=implementation))
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if implementation == "hf_spam":
        if weights == "random":
            torch.manual_seed(seed)
            ours = GPT2(gpt2_config(model, {"dropout": 0.0}))
        else:
            ours = GPT2.from_pretrained(model)
        lm: Any = ours.to_transformers()
    else:
        config = from_pretrained_offline_first(AutoConfig.from_pretrained, model, f"model config '{model}'")
        if weights == "random":
            torch.manual_seed(seed)
            lm = AutoModelForCausalLM.from_config(config)
        else:
            lm = from_pretrained_offline_first(
                AutoModelForCausalLM.from_pretrained, model, f"model '{model}'", config=config
            )
    vocab = lm.get_input_embeddings().num_embeddings
    if len(tok) > vocab:
        raise ValueError(f"tokenizer has {len(tok)} tokens but the model's vocabulary is {vocab}")
    lm = lm.to(device=device, dtype=DTYPES[dtype]).eval().requires_grad_(False)
    logger.info("decoder %s (%s, %s): %d parameters on %s", model, implementation, weights,
                sum(p.numel() for p in lm.parameters()), device)  # fmt: skip
    return lm, tok


def context_length(lm: nn.Module) -> int:
    """The longest sequence the decoder reads (its config's; 1024 when it does not say)."""
    config = lm.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024
