"""Weights between transformers' GPT-2 and ours: key map, Conv1D transposes, strict checks, sources.

transformers stores GPT-2's four projection weights as ``Conv1D`` (``(in, out)``); ours are ``nn.Linear``
(``(out, in)``), so exactly those four are transposed, biases never. Checkpoints come with or without the
``transformer.`` prefix, some carry the causal-mask buffers ``attn.bias``/``attn.masked_bias`` (dropped), and
``save_pretrained`` omits the tied ``lm_head.weight``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .gpt2 import GPT2, GPT2_SIZES, GPT2Config
from .hub import OfflineError, ensure_reachable, is_local, looks_like_hub_id

logger = logging.getLogger(__name__)

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
DROPPED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
TIED_KEY = "lm_head.weight"
HEAD_PREFIXES = ("lm_head.", "score.")  # heads sit beside the body, never under ``transformer.``
EMBEDDING_KEY = "transformer.wte.weight"


class WeightsError(ValueError):
    """A checkpoint does not fit the model: missing or unexpected keys, or wrong shapes."""


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
    dropouts = {hf_config.resid_pdrop, hf_config.embd_pdrop, hf_config.attn_pdrop}
    if len(dropouts) > 1:
        logger.warning("transformers config has different dropouts %s; using resid_pdrop", dropouts)
    eos = hf_config.eos_token_id
    return GPT2Config(
        vocab_size=hf_config.vocab_size,
        context_length=hf_config.n_positions,
        emb_dim=hf_config.n_embd,
        n_layers=hf_config.n_layer,
        n_heads=hf_config.n_head,
        dropout=hf_config.resid_pdrop,
        layer_norm_eps=hf_config.layer_norm_epsilon,
        causal=getattr(hf_config, "is_causal", True) is not False,
        eos_token_id=eos if isinstance(eos, int) and 0 <= eos < hf_config.vocab_size else None,
    )


def config_to_transformers(config: GPT2Config) -> Any:
    """A ``transformers.GPT2Config`` for our config (tanh GELU, same sizes, dropouts and eps)."""
    from transformers import GPT2Config as HFGPT2Config

    hf_config = HFGPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.emb_dim,
        n_layer=config.n_layers,
        n_head=config.n_heads,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        layer_norm_epsilon=config.layer_norm_eps,
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


def build_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: GPT2Config | None,
    source: str,
    dtype: torch.dtype | None = None,
) -> GPT2:
    """Our GPT-2 holding ``state_dict`` (our key names), after a strict check."""
    config = config or infer_config(state_dict)
    with torch.device("meta"):
        model = GPT2(config)  # no random init of weights that are overwritten anyway
    check_state_dict(model, state_dict, source)
    tensors = {k: v for k, v in state_dict.items() if k != TIED_KEY}
    if dtype is not None:
        tensors = {k: v.to(dtype) for k, v in tensors.items()}
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    model.load_state_dict(tensors, strict=False, assign=True)
    model.lm_head.weight = model.transformer.wte.weight  # re-tie after assign
    return model


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


def download(repo_id: str) -> Path:
    """Local folder of the hub repo ``repo_id`` (from the cache when there, else downloaded)."""
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not in the local cache
        pass
    ensure_reachable(
        f"GPT-2 weights '{repo_id}'",
        alternatives="Pass a local folder (written by save_pretrained, or a hub snapshot) or a state dict, "
        "or use random weights: GPT2.from_config('gpt2') / --weights random.",
    )
    return Path(snapshot_download(repo_id, allow_patterns=patterns))


def load_gpt2(source: Any, config: GPT2Config | None = None, dtype: torch.dtype | None = None) -> GPT2:
    """Our GPT-2 from ``source``, checked strictly (any missing/unexpected key or shape is an error).

    ``source`` may be a hub id (``"gpt2"``, ``"openai-community/gpt2-medium"``), a local folder or weights
    file (safetensors, or ``.bin`` read with ``weights_only=True``), a transformers ``GPT2Model`` /
    ``GPT2LMHeadModel``, or a transformers-format state dict (with or without ``transformer.``; ``Conv1D``
    layouts). To restore one of our own state dicts, use ``model.load_state_dict``.
    ``config`` defaults to the source's ``config.json`` / model config, else is inferred from shapes.
    """
    if isinstance(source, nn.Module):
        if isinstance(source, GPT2):
            return build_from_state_dict(source.state_dict(), config or source.config, "a GPT2 module", dtype)
        hf_config = getattr(source, "config", None)
        if hf_config is None or getattr(hf_config, "model_type", None) != "gpt2":
            raise WeightsError(f"cannot load GPT-2 weights from a {type(source).__name__}")
        config = config or config_from_transformers(hf_config)
        state = from_transformers_state_dict(source.state_dict())
        return build_from_state_dict(state, config, type(source).__name__, dtype)
    if isinstance(source, Mapping):
        return build_from_state_dict(from_transformers_state_dict(source), config, "a state dict", dtype)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"unsupported weights source of type {type(source).__name__}")
    path = Path(os.fspath(source)).expanduser()
    if not is_local(path):
        if not looks_like_hub_id(str(source)):
            raise FileNotFoundError(f"no such file or folder: {source}")
        try:
            path = download(str(source))
        except OfflineError:
            raise
        except Exception as err:
            raise OSError(f"could not fetch GPT-2 weights '{source}' from the hub: {err}") from err
    config_file = path / "config.json" if path.is_dir() else path.parent / "config.json"
    if config is None and config_file.is_file():
        from transformers import GPT2Config as HFGPT2Config

        config = config_from_transformers(HFGPT2Config.from_pretrained(config_file.parent))
    state = from_transformers_state_dict(read_weights(path))
    return build_from_state_dict(state, config, str(path), dtype)


def to_transformers(model: GPT2) -> Any:
    """A ``transformers.GPT2LMHeadModel`` holding exactly ``model``'s weights (same dtype and device)."""
    from transformers import GPT2LMHeadModel

    hf_config = config_to_transformers(model.config)
    with torch.device("meta"):
        hf_model = GPT2LMHeadModel(hf_config)
    state = to_transformers_state_dict(model.state_dict())
    if not model.config.qkv_bias:  # transformers' Conv1D always has a bias: a zero one is the same
        for i in range(model.config.n_layers):
            weight = state[f"transformer.h.{i}.attn.c_attn.weight"]
            state[f"transformer.h.{i}.attn.c_attn.bias"] = weight.new_zeros(weight.shape[1])
    hf_model.load_state_dict({k: v for k, v in state.items() if k != TIED_KEY}, strict=False, assign=True)
    hf_model.tie_weights()
    missing = [k for k, v in hf_model.state_dict().items() if v.is_meta]
    if missing:
        raise WeightsError(f"export left transformers tensors unset: {missing}")
    return hf_model.eval() if not model.training else hf_model
