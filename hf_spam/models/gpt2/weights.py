"""Weights and configs between transformers' GPT-2 and ours: key map, Conv1D transposes, strict checks.

transformers stores GPT-2's four projection weights as ``Conv1D`` (``(in, out)``); ours are ``nn.Linear``
(``(out, in)``), so exactly those four are transposed, biases never. Checkpoints come with or without the
``transformer.`` prefix, some carry the causal-mask buffers ``attn.bias``/``attn.masked_bias`` (dropped), and
``save_pretrained`` omits the tied ``lm_head.weight``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import WeightsError
from .config import GPT2_SIZES, GPT2Config

logger = logging.getLogger(__name__)

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
DROPPED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
TIED_KEY = "lm_head.weight"
HEAD_PREFIXES = ("lm_head.", "score.")  # heads sit beside the body, never under ``transformer.``
EMBEDDING_KEY = "transformer.wte.weight"


def _is_conv1d_weight(key: str) -> bool:
    return key.endswith(CONV1D_WEIGHTS)


def normalize_key(key: str) -> str | None:
    """Our key for a transformers GPT-2 key, or None when the entry is a dropped buffer."""
    if key.endswith(DROPPED_SUFFIXES):
        return None
    if key.startswith(("transformer.", *HEAD_PREFIXES)):
        return key
    return "transformer." + key


def from_transformers_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a transformers GPT-2 state dict (prefixed or not) to our key names and layouts."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        ours = normalize_key(key)
        if ours is None:
            continue
        out[ours] = tensor.t() if _is_conv1d_weight(ours) else tensor
    return out


def to_transformers_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map our state dict to ``GPT2LMHeadModel`` key names and ``Conv1D`` layouts."""
    return {key: (t.t().contiguous() if _is_conv1d_weight(key) else t) for key, t in state_dict.items()}


# our GPT2Config field -> transformers' GPT2Config field; both directions read this one table
CONFIG_FIELDS = (
    ("vocab_size", "vocab_size"),
    ("context_length", "n_positions"),
    ("emb_dim", "n_embd"),
    ("n_layers", "n_layer"),
    ("n_heads", "n_head"),
    ("dropout", "resid_pdrop"),
    ("layer_norm_eps", "layer_norm_epsilon"),
)
DROPOUT_FIELDS = ("resid_pdrop", "embd_pdrop", "attn_pdrop")  # transformers has three, we have one


def config_from_transformers(hf_config: Any) -> GPT2Config:
    """Our :class:`GPT2Config` for a ``transformers.GPT2Config``; unsupported variants are an error."""
    unsupported = []
    if hf_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        unsupported.append(f"activation_function={hf_config.activation_function!r} (only the tanh GELU)")
    if getattr(hf_config, "n_inner", None) not in (None, 4 * hf_config.n_embd):
        unsupported.append(f"n_inner={hf_config.n_inner}")
    if getattr(hf_config, "add_cross_attention", False):
        unsupported.append("add_cross_attention=True")
    if getattr(hf_config, "scale_attn_by_inverse_layer_idx", False) or not getattr(
        hf_config, "scale_attn_weights", True
    ):
        unsupported.append("non-standard attention scaling")
    if unsupported:
        raise WeightsError("unsupported GPT-2 variant: " + "; ".join(unsupported))
    dropouts = {getattr(hf_config, name) for name in DROPOUT_FIELDS}
    if len(dropouts) > 1:
        logger.warning("transformers config has different dropouts %s; using resid_pdrop", dropouts)
    eos = hf_config.eos_token_id
    return GPT2Config(
        **{ours: getattr(hf_config, theirs) for ours, theirs in CONFIG_FIELDS},
        causal=getattr(hf_config, "is_causal", True) is not False,
        eos_token_id=eos if isinstance(eos, int) and 0 <= eos < hf_config.vocab_size else None,
    )


def config_to_transformers(config: GPT2Config) -> Any:
    """A ``transformers.GPT2Config`` for our config (tanh GELU, same sizes, dropouts and eps)."""
    from transformers import GPT2Config as HFGPT2Config

    hf_config = HFGPT2Config(
        **{theirs: getattr(config, ours) for ours, theirs in CONFIG_FIELDS},
        **dict.fromkeys(DROPOUT_FIELDS[1:], config.dropout),  # resid_pdrop is in CONFIG_FIELDS
        activation_function="gelu_new",
        bos_token_id=config.eos_token_id,
        eos_token_id=config.eos_token_id,
    )
    if not config.causal:
        hf_config.is_causal = False
    return hf_config


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> GPT2Config:
    """Sizes from the tensor shapes of one of our state dicts; heads from the four standard sizes."""
    vocab_size, emb_dim = state_dict[EMBEDDING_KEY].shape
    heads = {size["emb_dim"]: size["n_heads"] for size in GPT2_SIZES.values()}
    if emb_dim not in heads:
        raise WeightsError(f"cannot infer n_heads for emb_dim={emb_dim}; pass config=GPT2Config(...)")
    layers = {int(k.split(".")[2]) for k in state_dict if k.startswith("transformer.h.")}
    return GPT2Config(
        vocab_size=vocab_size,
        context_length=state_dict["transformer.wpe.weight"].shape[0],
        emb_dim=emb_dim,
        n_layers=max(layers) + 1,
        n_heads=heads[emb_dim],
        qkv_bias="transformer.h.0.attn.c_attn.bias" in state_dict,
    )


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`WeightsError` naming every missing or unexpected key and every shape mismatch."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    optional = {TIED_KEY}  # tied to the embedding; checkpoints often omit it
    missing = sorted(set(expected) - set(state_dict) - optional)
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k])}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {missing}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes))
    if problems:
        raise WeightsError(
            f"weights from {source} do not fit GPT-2 ({model.config}):\n  " + "\n  ".join(problems)
        )
    head = state_dict.get(TIED_KEY)
    embedding = state_dict[EMBEDDING_KEY]
    if head is not None and not head.is_meta and head is not embedding and not torch.equal(head, embedding):
        raise WeightsError(f"{TIED_KEY} in {source} differs from {EMBEDDING_KEY}; GPT-2 ties them")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a local checkpoint: a file (.safetensors / .bin / .pt) or a folder holding one."""
    from safetensors.torch import load_file

    if path.is_dir():
        for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {path}")
    if path.name.endswith(".index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(path.parent / shard).items()}
    if path.suffix == ".safetensors":
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)
