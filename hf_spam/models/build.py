"""Build the classifier a recipe asks for: our GPT-2, or any transformers sequence classifier.

``implementation="hf_spam"``: :class:`~hf_spam.models.classifier.GPT2Classifier` on our GPT-2 (one of the four
sizes, a local GPT-2 folder, or a hub id), pretrained or random. ``implementation="transformers"``:
``AutoModelForSequenceClassification`` for any decoder (GPT-2, Llama-family such as SmolLM2) or encoder
(BERT family), with the pad token set so batches can be padded.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from ..data.tokenizer import load_tokenizer
from ..hub.access import from_pretrained_offline_first, is_local
from .arguments import ModelArguments
from .classifier import GPT2Classifier
from .gpt2 import GPT2, GPT2_SIZES, GPT2Config
from .gpt2.blocks import position_ids_from_mask
from .gpt2.weights import config_from_transformers

logger = logging.getLogger(__name__)

DROPOUT_FIELDS = (
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "summary_first_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "attention_dropout",
    "hidden_dropout",
    "classifier_dropout",
    "dropout",
)
_MISSING_WEIGHTS = "No GPT-2 weights? Use --weights random, or pass a local folder with --model."


def _is_gpt2_size(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in GPT2_SIZES and not is_local(name)


def tokenizer_for(args: ModelArguments) -> PreTrainedTokenizerBase:
    """The tokenizer named by ``--tokenizer``, else the model folder's own, else GPT-2's."""
    source = args.tokenizer
    if source is None:
        folder = Path(os.fspath(args.model)).expanduser()
        has_own = folder.is_dir() and any(
            (folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")
        )
        source = args.model if has_own or not _is_gpt2_size(args.model) else "gpt2"
    return load_tokenizer(source)


def build_classifier(
    args: ModelArguments, id2label: dict[int, str], tokenizer: PreTrainedTokenizerBase
) -> nn.Module:
    """The classifier for ``args`` with ``len(id2label)`` classes; its vocabulary covers the tokenizer's."""
    if args.implementation == "hf_spam":
        model = _gpt2_classifier(args, id2label)
        vocab = model.config.vocab_size
    else:
        model = _transformers_classifier(args, id2label, tokenizer)
        vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model's vocabulary is {vocab}")
    return model


def _gpt2_classifier(args: ModelArguments, id2label: dict[int, str]) -> GPT2Classifier:
    overrides: dict[str, Any] = {"causal": args.causal}
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    if args.weights == "random":
        config = gpt2_config(args.model, overrides)
        logger.info("random %s: %s", args.model, config)
        return GPT2Classifier(config, len(id2label), args.pooling or "last", id2label)
    try:
        gpt2 = GPT2.from_pretrained(args.model)
    except OSError as err:
        raise type(err)(f"{err} {_MISSING_WEIGHTS}") from err
    for key, value in overrides.items():
        setattr(gpt2.config, key, value)
    _set_dropout(gpt2, gpt2.config.dropout)
    return GPT2Classifier.from_gpt2(gpt2, len(id2label), args.pooling or "last", id2label=id2label)


def gpt2_config(model: str, overrides: dict[str, Any]) -> GPT2Config:
    """Our config for a GPT-2 size name or a transformers GPT-2 folder, with ``overrides`` applied."""
    if _is_gpt2_size(model):
        return GPT2Config.from_name(model, **overrides)
    if is_local(model):  # a transformers GPT-2 folder: its sizes, none of its weights
        config = config_from_transformers(AutoConfig.from_pretrained(model))
        for key, value in overrides.items():
            setattr(config, key, value)
        return config
    raise ValueError(
        f"--implementation hf_spam needs a GPT-2 size ({sorted(GPT2_SIZES)}) or a GPT-2 folder, not {model!r}"
    )


def _set_dropout(model: nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        elif hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = p  # our attention's SDPA dropout


def _transformers_classifier(
    args: ModelArguments, id2label: dict[int, str], tokenizer: PreTrainedTokenizerBase
) -> nn.Module:
    if args.pooling is not None:
        raise ValueError(
            f"--pooling {args.pooling} needs --implementation hf_spam; transformers' classifiers pool"
            " their own way (decoders: the last non-pad token; BERT: [CLS])"
        )
    config = from_pretrained_offline_first(
        AutoConfig.from_pretrained, args.model, f"model config '{args.model}'"
    )
    config.num_labels = len(id2label)
    config.id2label = dict(id2label)
    config.label2id = {v: k for k, v in id2label.items()}
    config.pad_token_id = tokenizer.pad_token_id  # decoders pool the last token that is not padding
    if args.dropout is not None:
        for name in DROPOUT_FIELDS:
            if isinstance(getattr(config, name, None), float):
                setattr(config, name, args.dropout)
    if not args.causal:
        config.is_causal = False  # transformers' mask builders then make bidirectional masks
    if args.weights == "random":
        return reads_any_padding(AutoModelForSequenceClassification.from_config(config))
    model = from_pretrained_offline_first(
        AutoModelForSequenceClassification.from_pretrained, args.model, f"model '{args.model}'", config=config
    )
    return reads_any_padding(model)


def _is_decoder_only(config: Any) -> bool:
    """A decoder: transformers has a causal LM and no masked LM for it (GPT-2, Llama, Qwen, ...; not BERT)."""
    model_type = getattr(config, "model_type", None)
    return (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and not getattr(config, "is_encoder_decoder", False)
    )


def _input_length(args: tuple, kwargs: dict[str, Any]) -> int | None:
    """The number of positions the forward computes: its input ids' or embeddings' length."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    embeds = kwargs.get("inputs_embeds")
    found = ids if ids is not None else embeds
    return None if found is None else found.shape[1]


def _position_ids_hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict]:
    mask, length = kwargs.get("attention_mask"), _input_length(args, kwargs)
    if mask is not None and mask.ndim == 2 and kwargs.get("position_ids") is None and length:
        # the mask may be longer than the input: prefix tuning's keys and values come first
        kwargs["position_ids"] = position_ids_from_mask(mask)[:, -length:]
    return args, kwargs


def positions_from_mask(model: nn.Module) -> nn.Module:
    """Make a transformers decoder count positions from each row's first real token, as our GPT-2 does.

    transformers' ``*ForSequenceClassification`` forward uses ``arange(T)`` when no ``position_ids`` are
    given, so a left-padded row of a GPT-2 (absolute positions) gets other logits than the same row alone.
    A forward pre-hook on the base model passes ``attention_mask.cumsum(-1) - 1`` (clamped at 0) instead,
    as ``generate`` does; its last ``T`` columns when the mask is longer than the input (a prefix of keys
    and values: prefix tuning). It sits below any peft wrapper and changes no weights. Encoders (see
    :func:`real_tokens_first`) and models whose forward takes no ``position_ids`` are left as they are.
    Returns ``model``.
    """
    base = getattr(model, "base_model", None)
    config = getattr(model, "config", None)
    if base is None or base is model or not _is_decoder_only(config):
        return model
    if "position_ids" not in inspect.signature(base.forward).parameters:
        return model
    if not getattr(base, "_hf_spam_positions_from_mask", False):
        base.register_forward_pre_hook(_position_ids_hook, with_kwargs=True)
        base._hf_spam_positions_from_mask = True
        logger.info("%s: position ids counted from each row's first real token", type(model).__name__)
    return model


def _real_tokens_first_hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict]:
    mask, length = kwargs.get("attention_mask"), _input_length(args, kwargs)
    if mask is None or mask.ndim != 2 or not length:
        return args, kwargs
    prefix, own = mask[:, : mask.shape[1] - length], mask[:, -length:]  # prefix tuning's columns stay first
    # no pad before a token (right padding or none): nothing to move. A traced graph (the ONNX export) keeps
    # the reorder whatever the example batch was, as it is the identity on right-padded rows.
    if not torch.jit.is_tracing() and not bool((own[:, 1:] > own[:, :-1]).any()):
        return args, kwargs
    columns = torch.arange(own.shape[1], device=own.device)
    # real tokens first, each side in its order: distinct keys, so no sort (nor exporter) has ties to break
    order = ((own == 0).long() * own.shape[1] + columns).argsort(dim=1)
    if args:
        kwargs["input_ids"], args = args[0], args[1:]
    for key in ("input_ids", "token_type_ids", "position_ids", "inputs_embeds"):
        value = kwargs.get(key)
        if value is not None:
            index = order if value.ndim == 2 else order[..., None].expand_as(value)
            kwargs[key] = value.gather(1, index)
    kwargs["attention_mask"] = torch.cat([prefix, own.gather(1, order)], dim=1)
    return args, kwargs


def reads_any_padding(model: nn.Module) -> nn.Module:
    """A transformers classifier that gives a row the logits it has alone, padded on either side: decoders
    count positions from the mask (:func:`positions_from_mask`), encoders move pads after the tokens
    (:func:`real_tokens_first`). Returns ``model``."""
    return real_tokens_first(positions_from_mask(model))


def real_tokens_first(model: nn.Module) -> nn.Module:
    """Make an encoder classifier read a left-padded row as the same row right-padded.

    transformers' encoders pool the first column (BERT's ``[CLS]``), which left padding fills with a pad,
    and count absolute positions from it. A forward pre-hook on the base model (which runs under any peft
    wrapper) moves each row's pads after its tokens when a pad comes before a token: a stable reorder;
    attention is bidirectional and pads are masked, so nothing else changes. Decoders are left as they
    are (:func:`positions_from_mask`). Returns ``model``.
    """
    base = getattr(model, "base_model", None)
    config = getattr(model, "config", None)
    if base is None or base is model or config is None or _is_decoder_only(config):
        return model
    if not getattr(base, "_hf_spam_real_tokens_first", False):
        base.register_forward_pre_hook(_real_tokens_first_hook, with_kwargs=True)
        base._hf_spam_real_tokens_first = True
    return model
