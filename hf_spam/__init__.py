"""hf_spam: turn pretrained language models into text classifiers on the Hugging Face stack."""

from .tokenizer import load_tokenizer

__all__ = ["load_tokenizer"]
__version__ = "0.1.0"
