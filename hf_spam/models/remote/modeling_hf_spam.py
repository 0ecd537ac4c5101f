"""A GPT-2 sequence classifier with hf_spam's pooling (``last`` / ``first`` / ``mean`` real token).

hf_spam saves a classifier trained with ``--pooling first`` or ``--pooling mean`` with this file beside its
weights (``model_type: hf_spam_gpt2``, an ``auto_map`` in config.json). transformers then loads it only as
custom code, and reproduces hf_spam's predictions exactly:

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    pipeline("text-classification", model=folder, trust_remote_code=True)

Without ``trust_remote_code=True`` transformers refuses to load the folder, rather than pooling the last
token as a plain GPT-2 classifier would. ``python recipes/predict.py --run <folder>`` (hf_spam) needs no
flag. This file is self-contained (torch and transformers only): it is copied into every such folder.
"""

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2ForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("last", "first", "mean")


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """Reduce hidden states ``(B, T, C)`` to ``(B, C)``, reading real tokens only.

    ``last``: the last real token (the rightmost mask 1), right for left and right padding alike — the
    book's ``[:, -1]`` reads a pad token on right-padded batches. ``first``: the first real token.
    ``mean``: the mean over real tokens.
    """
    B, T, _ = hidden.shape
    if attention_mask is None:
        attention_mask = torch.ones(B, T, dtype=torch.long, device=hidden.device)
    mask = attention_mask.to(hidden.device).long()
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    return hidden[torch.arange(B, device=hidden.device), pool_index(mask, pooling)]


def pool_index(attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Position ``(B,)`` of the token that ``last`` or ``first`` pooling reads in each row."""
    mask = attention_mask.long()
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)
        return (positions * mask).argmax(-1)  # the rightmost real token
    if pooling == "first":
        return mask.argmax(-1)  # argmax returns the first maximum: the leftmost real token
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")


class HfSpamGPT2Config(GPT2Config):
    """transformers' GPT-2 config plus the pooling hf_spam trained with."""

    model_type = "hf_spam_gpt2"

    def __init__(self, pooling: str = "last", **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        self.pooling = pooling
        super().__init__(**kwargs)


class HfSpamGPT2ForSequenceClassification(GPT2ForSequenceClassification):
    """``GPT2ForSequenceClassification`` (same weights, head ``score``) pooling as ``config.pooling`` says."""

    config_class = HfSpamGPT2Config

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        past_key_values=None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Logits pooled over the real tokens. With ``past_key_values`` (prefix tuning: trained keys and
        values in front) the attention mask covers them too; positions and pooling use its last ``T``
        columns, the ones of the tokens given."""
        length = (input_ids if input_ids is not None else kwargs["inputs_embeds"]).shape[1]
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            position_ids = position_ids_from_mask(attention_mask)[:, -length:]
        kwargs.pop("return_dict", None)
        kwargs["use_cache"] = False
        if past_key_values is not None:
            kwargs["cache"] = past_key_values  # transformers 5's name for it
        hidden = self.transformer(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        ).last_hidden_state
        mask = attention_mask[:, -length:] if attention_mask is not None else None
        logits = self.score(pool(hidden, mask, self.config.pooling))
        loss = F.cross_entropy(logits.float(), labels.view(-1)) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
