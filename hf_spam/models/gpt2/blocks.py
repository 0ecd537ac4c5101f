"""GPT-2's transformer block and its parts, module for module as transformers names them.

Attention runs through ``F.scaled_dot_product_attention`` with a fused qkv projection (``c_attn``); the MLP
uses the tanh GELU (transformers' ``gelu_new``); blocks are pre-LayerNorm. Masks are boolean, True where
attention is allowed; positions count from each row's first real token, so padding on either side gives
the same outputs as no padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPT2Config


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
    index = torch.arange(T, device=attention_mask.device)  # comparisons, not eye/tril: they export to ONNX
    query, key = index[:, None], index[None, :]
    if causal:
        allowed = allowed & (key <= query)
    return allowed | (key == query)  # (B, 1, T, T)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token (what transformers' ``generate`` does).

    A left-padded row thus gets the same positions, and the same outputs, as the unpadded row; for a
    right-padded row they equal ``arange(T)`` on every real token.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
