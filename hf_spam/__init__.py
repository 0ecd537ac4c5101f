"""hf_spam: turn pretrained language models into text classifiers on the Hugging Face stack."""

from .gpt2 import GPT2, GPT2Config
from .tokenizer import load_tokenizer

__all__ = ["GPT2", "GPT2Config", "load_tokenizer"]
__version__ = "0.1.0"
