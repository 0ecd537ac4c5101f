"""GPT-2's hyper-parameters (:class:`GPT2Config`) and the four published sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

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
