"""GPT-2 from scratch (all four sizes), verified against transformers' GPT-2: config, blocks, model,
generation, and the exact weight conversion both ways."""

from .config import GPT2_SIZES, GPT2Config
from .model import GPT2

__all__ = ["GPT2", "GPT2_SIZES", "GPT2Config"]
