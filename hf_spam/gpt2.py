"""GPT-2 from scratch, module for module the same as transformers' GPT-2.

Module names mirror ``transformers.GPT2LMHeadModel`` (``transformer.wte``, ``transformer.h.0.attn.c_attn``,
``lm_head`` …) so that state dicts map one to one; only the four ``Conv1D`` weights are stored transposed
there (see :mod:`hf_spam.convert`). Attention runs through ``F.scaled_dot_product_attention`` with a fused
qkv projection, the MLP uses the tanh GELU (transformers' ``gelu_new``), and the LM head shares its weight
with the token embedding.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

FROM_CONFIG = -1  # generate(eos_token_id=FROM_CONFIG): stop at config.eos_token_id

GPT2_SIZES: dict[str, dict[str, int]] = {
    "gpt2": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}


@dataclass
class GPT2Config:
    """Hyper-parameters of a GPT-2 model. Defaults are GPT-2 small (124M).

    ``causal=False`` lets every token attend to every (non-pad) token, a switch of the book's bonus study.
    ``dropout`` applies to embeddings, attention weights and both residual branches, as in GPT-2.
    ``eos_token_id`` (end-of-text, where :meth:`GPT2.generate` stops) defaults to the last vocabulary id.
    """

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_layers: int = 12
    n_heads: int = 12
    dropout: float = 0.1
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-5
    causal: bool = True
    eos_token_id: int | None = None  # None: the last token of the vocabulary (GPT-2's <|endoftext|> = 50256)

    def __post_init__(self) -> None:
        if self.eos_token_id is None:
            self.eos_token_id = self.vocab_size - 1
        if not 0 <= self.eos_token_id < self.vocab_size:
            raise ValueError(
                f"eos_token_id {self.eos_token_id} is outside the vocabulary of {self.vocab_size}"
            )
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> GPT2Config:
        """Config of one of the four sizes: ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``.

        A hub-style prefix (``openai-community/gpt2-xl``) is accepted.
        """
        size = name.rsplit("/", 1)[-1]
        if size not in GPT2_SIZES:
            raise ValueError(f"unknown GPT-2 size {name!r}; choose one of {sorted(GPT2_SIZES)}")
        return cls(**{**GPT2_SIZES[size], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GPT2Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GPT2Config field(s): {unknown}")
        return cls(**values)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (``c_attn``) and an output projection."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.emb_dim = config.emb_dim
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)
        self.c_proj = nn.Linear(config.emb_dim, config.emb_dim)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``mask``: boolean ``(B, 1, T, T)``, True where attention is allowed; None for no padding.

        ``rows`` ``(B,)``: compute the output at one query position per row only, ``(B, 1, C)``; keys and
        values still come from every position, so that row equals the same row of the full output.
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        if rows is not None:
            q = at_rows(q, rows)  # (B, 1, C)
            mask = query_rows_mask(mask, causal, rows, T)
        Tq = q.shape[1]
        q = q.view(B, Tq, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, Tq, hs)
        k = k.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal and mask is None and rows is None and T > 1,
        )  # (B, nh, Tq, hs)
        y = y.transpose(1, 2).reshape(B, Tq, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward network: 4x expansion with the tanh GELU of GPT-2."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.emb_dim, 4 * config.emb_dim)
        self.c_proj = nn.Linear(4 * config.emb_dim, config.emb_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, T, C)`` -> ``(B, T, C)``; with ``rows`` ``(B,)`` only those positions, ``(B, 1, C)``."""
        attn = self.attn(self.ln_1(x), mask, causal, rows)
        if rows is not None:
            x = at_rows(x, rows)  # (B, 1, C)
        x = x + attn
        return x + self.mlp(self.ln_2(x))


def at_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[b, rows[b]]`` for every row ``b`` of ``x`` ``(B, T, ...)``, as a length-1 axis: ``(B, 1, ...)``."""
    return x[torch.arange(x.shape[0], device=x.device), rows][:, None]


def query_rows_mask(
    mask: torch.Tensor | None, causal: bool, rows: torch.Tensor, T: int
) -> torch.Tensor | None:
    """The ``(B, 1, 1, T)`` attention mask of one query position per row (``rows``), or None for all keys."""
    if mask is not None:
        return mask[torch.arange(mask.shape[0], device=mask.device), :, rows][:, :, None, :]
    if causal:
        return (torch.arange(T, device=rows.device) <= rows[:, None])[:, None, None, :]
    return None


def attention_mask_4d(attention_mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean ``(B, 1, T, T)`` mask from a ``(B, T)`` 1/0 padding mask: True where attention is allowed.

    Keys that are padding are never attended to; with ``causal`` a query only sees keys at or before it.
    Every query may attend to itself, so a pad query (left padding) never has an all-masked row (which
    would give NaN); real queries are unaffected because their own key is real.
    """
    T = attention_mask.shape[1]
    allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    eye = torch.eye(T, dtype=torch.bool, device=attention_mask.device)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=attention_mask.device).tril()
    return allowed | eye  # (B, 1, T, T)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token (what transformers' ``generate`` does).

    A left-padded row thus gets the same positions, and the same outputs, as the unpadded row; for a
    right-padded row they equal ``arange(T)`` on every real token.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


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
            if i == top and last_rows is not None:
                x = block(x, mask, self.config.causal, rows=last_rows)
            else:
                x = block(x, mask, self.config.causal)
        return self.transformer.ln_f(x)

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

        See :func:`hf_spam.convert.load_gpt2` for the details and the strict key check.
        """
        from .convert import load_gpt2

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
        from .convert import to_transformers

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
