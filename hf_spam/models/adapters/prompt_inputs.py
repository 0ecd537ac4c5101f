"""What makes peft's prompt methods correct on every classifier, padded either side.

peft's prompt and P-tuning prepend virtual tokens and call the classifier with ``inputs_embeds`` and an
attention mask extended by ones; prefix tuning passes a cache of trained keys and values. Three gaps:

- transformers' decoder classifiers find the last real token from ``input_ids``; given only embeddings
  they read the last position — a pad under right padding (peft issue 764). :func:`last_real_token_last`
  moves each row's pads in front of its tokens inside the base model (a stable reorder of the tokens with
  their positions; pads are masked out, so the row computes the same values), so the last position is
  real.
- Left padding puts the pads between the virtual tokens and the text (peft issue 1093): positions counted
  from the attention mask (:func:`hf_spam.models.build.positions_from_mask`, which also handles the
  longer mask of prefix tuning) make a text's prediction independent of its batch.
- transformers 5 names the key/value cache argument ``cache``; peft 0.21 looks for ``past_key_values`` and
  refuses prefix tuning ("Model does not support past key values"). :func:`accept_past_key_values` gives
  the classifier a forward that takes ``past_key_values`` and passes it on as ``cache``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..build import _is_decoder_only


def _pads_first(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict]:
    ids = kwargs.get("input_ids", args[0] if args else None)
    embeds, mask = kwargs.get("inputs_embeds"), kwargs.get("attention_mask")
    if (
        ids is not None
        or embeds is None
        or mask is None
        or mask.ndim != 2
        or mask.shape[1] != embeds.shape[1]
    ):
        return args, kwargs  # given ids, the classifier finds the last real token itself
    if not bool((mask[:, 1:] < mask[:, :-1]).any()):  # no pad after a token: left padding or none
        return args, kwargs
    order = torch.sort(mask, dim=1, stable=True).indices  # zeros (pads) first, every row's order kept
    kwargs["inputs_embeds"] = embeds.gather(1, order[..., None].expand_as(embeds))
    kwargs["attention_mask"] = mask.gather(1, order)
    for key in ("position_ids", "token_type_ids"):
        if kwargs.get(key) is not None and kwargs[key].shape == mask.shape:
            kwargs[key] = kwargs[key].gather(1, order)
    return args, kwargs


def last_real_token_last(model: nn.Module) -> nn.Module:
    """For a transformers decoder classifier (given embeddings, it pools the last position): its base model
    moves every row's pads before its tokens when called with ``inputs_embeds``. Returns ``model``."""
    base = getattr(model, "base_model", None)
    if base is None or base is model or not _is_decoder_only(getattr(model, "config", None)):
        return model
    if not getattr(base, "_hf_spam_pads_first", False):
        base.register_forward_pre_hook(_pads_first, with_kwargs=True)
        base._hf_spam_pads_first = True
    return model


def accept_past_key_values(model: nn.Module) -> nn.Module:
    """Give ``model`` a forward that takes peft's ``past_key_values`` and passes it on as transformers 5's
    ``cache`` (an instance attribute; the class is unchanged). Returns ``model``."""
    forward = model.forward
    if "past_key_values" in inspect.signature(forward).parameters:
        return model

    def forward_with_past(*args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
        if past_key_values is not None:
            kwargs["cache"] = past_key_values
        return forward(*args, **kwargs)

    model.forward = forward_with_past
    return model
