"""GPT-2 from scratch, module for module the same as transformers' GPT-2, and its loading and export.

Module names mirror ``transformers.GPT2LMHeadModel`` (``transformer.wte``, ``transformer.h.0.attn.c_attn``,
``lm_head`` …) so that state dicts map one to one; only the four ``Conv1D`` weights are stored transposed
there (see :mod:`.weights`). The blocks are in :mod:`.blocks`; the LM head shares its weight with the token
embedding. :meth:`GPT2.from_pretrained` loads transformers' GPT-2 weights (hub id, folder, file, module or
state dict) with a strict key check; :meth:`GPT2.to_transformers` exports them back exactly.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...errors import OfflineError, WeightsError
from ...hub.access import ensure_reachable, is_local, looks_like_hub_id
from .blocks import Block, attention_mask_4d, position_ids_from_mask
from .config import GPT2Config
from .weights import (
    TIED_KEY,
    check_state_dict,
    config_from_transformers,
    config_to_transformers,
    from_transformers_state_dict,
    infer_config,
    read_weights,
    to_transformers_state_dict,
)

logger = logging.getLogger(__name__)

FROM_CONFIG = -1  # generate(eos_token_id=FROM_CONFIG): stop at config.eos_token_id


class GPT2(nn.Module):
    """GPT-2 language model. ``model(input_ids, attention_mask=None)`` returns logits ``(B, T, vocab)``."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.emb_dim),
                "wpe": nn.Embedding(config.context_length, config.emb_dim),
                "drop": nn.Dropout(config.dropout),
                "h": nn.ModuleList([Block(config) for _ in range(config.n_layers)]),
                "ln_f": nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps),
            }
        )
        self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying: one parameter, two uses
        self.gradient_checkpointing = False  # see gradient_checkpointing_enable
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layers)."""
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = 0.02
                if name.endswith("c_proj"):
                    std /= math.sqrt(2 * self.config.n_layers)
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        last_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-LayerNorm hidden states ``(B, T, emb_dim)``, the input of the LM head or a classifier head.

        ``attention_mask`` (1 = token, 0 = pad) may pad on either side; positions then count from each
        row's first real token unless ``position_ids`` are given. ``last_rows`` ``(B,)``: the last block
        computes only that position of each row (its keys and values still come from every token), giving
        ``(B, 1, emb_dim)``, the same rows as the full output.
        """
        x, mask = self.embed(input_ids, attention_mask, position_ids)
        top = len(self.transformer.h) - 1
        for i, block in enumerate(self.transformer.h):
            rows = {"rows": last_rows} if i == top and last_rows is not None else {}
            if self._checkpointed(block, x):
                x = checkpoint(block, x, mask, self.config.causal, **rows, use_reentrant=False)
            else:
                x = block(x, mask, self.config.causal, **rows)
        return self.transformer.ln_f(x)

    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict[str, Any] | None = None
    ) -> None:
        """Activation checkpointing per block, as transformers' method of that name: in training, a block
        keeps only its input and recomputes its activations in the backward pass (``torch.utils.checkpoint``,
        non-reentrant; the dropout masks are replayed). Same loss and gradients, less memory, ~1/3 more
        compute. Only the reentrant-free variant exists here: ``use_reentrant=True`` is an error."""
        if (gradient_checkpointing_kwargs or {}).get("use_reentrant"):
            raise ValueError("our GPT-2 checkpoints blocks with use_reentrant=False only")
        self.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        """Store every block's activations again (the default)."""
        self.gradient_checkpointing = False

    def _checkpointed(self, block: nn.Module, x: torch.Tensor) -> bool:
        """Whether ``block`` runs checkpointed now: checkpointing is on, the model trains with gradients, and
        the block is in the backward pass (a trained parameter, or an input that needs a gradient). A frozen
        block below every trained one stores nothing anyway: it is never recomputed."""
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            return False
        return x.requires_grad or any(p.requires_grad for p in block.parameters())

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first block's input ``(B, T, emb_dim)`` and the blocks' ``(B, 1, T, T)`` mask (None: no pads).

        Padding handled as in :meth:`hidden_states`.
        """
        T = input_ids.shape[1]
        if T > self.config.context_length:
            raise ValueError(f"sequence length {T} exceeds context_length {self.config.context_length}")
        causal = self.config.causal
        mask = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask {tuple(attention_mask.shape)} != input_ids {tuple(input_ids.shape)}"
                )
            if bool(attention_mask.all()):
                attention_mask = None  # no padding: the fast is_causal path, identical results
            else:
                mask = attention_mask_4d(attention_mask, causal)
                if position_ids is None:
                    position_ids = position_ids_from_mask(attention_mask)
        if position_ids is None:
            position_ids = torch.arange(T, device=input_ids.device)
        x = self.transformer.wte(input_ids) + self.transformer.wpe(position_ids)  # (B, T, C)
        return self.transformer.drop(x), mask

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token logits ``(B, T, vocab_size)``."""
        return self.lm_head(self.hidden_states(input_ids, attention_mask, position_ids))

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        attention_mask: torch.Tensor | None = None,
        eos_token_id: int | None = FROM_CONFIG,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue ``input_ids`` ``(B, T)`` by up to ``max_new_tokens`` tokens; returns ``(B, T + new)``.

        ``temperature=0`` is greedy decoding; otherwise tokens are sampled from ``softmax(logits / T)``,
        restricted to the ``top_k`` most likely when given. A row that emits end-of-text (``eos_token_id``,
        default ``config.eos_token_id``; ``None`` never stops) keeps emitting it; generation stops when every
        row has. Left-pad batched prompts and pass their ``attention_mask``.
        """
        if eos_token_id == FROM_CONFIG:
            eos_token_id = self.config.eos_token_id
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            context = input_ids[:, -self.config.context_length :]
            context_mask = attention_mask[:, -self.config.context_length :]
            logits = self(context, context_mask)[:, -1, :].float()  # (B, vocab)
            next_token = sample_next_token(logits, temperature, top_k, generator)
            if eos_token_id is not None:
                next_token = torch.where(finished, torch.full_like(next_token, eos_token_id), next_token)
                finished |= next_token == eos_token_id
            input_ids = torch.cat([input_ids, next_token[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(next_token)[:, None]], dim=1)
            if eos_token_id is not None and bool(finished.all()):
                break
        return input_ids

    @classmethod
    def from_pretrained(
        cls, source: Any, config: GPT2Config | None = None, dtype: torch.dtype | None = None
    ) -> GPT2:
        """Load GPT-2 weights from a hub id, a local folder, a transformers model or a state dict.

        See :func:`load_gpt2` for the details and the strict key check.
        """
        return load_gpt2(source, config=config, dtype=dtype)

    @classmethod
    def from_config(cls, config: GPT2Config | str, **overrides: Any) -> GPT2:
        """Randomly initialised model from a config or a size name; downloads nothing."""
        if isinstance(config, str):
            config = GPT2Config.from_name(config, **overrides)
        elif overrides:
            config = replace(config, **overrides)
        return cls(config)

    def to_transformers(self) -> Any:
        """An equivalent ``transformers.GPT2LMHeadModel`` with the same weights (exact round trip)."""
        return to_transformers(self)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write a transformers-format folder (``config.json`` + ``model.safetensors``)."""
        self.to_transformers().save_pretrained(directory)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of (unique) parameters; tied weights are counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def sample_next_token(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick one token per row from ``logits`` ``(B, vocab)``: greedy at temperature 0, else sampled."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


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
