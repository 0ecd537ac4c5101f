"""hf_spam: turn pretrained language models into text classifiers on the Hugging Face stack.

The package in layers (each imports only the ones before it): ``errors``, ``run_folder``, ``cli`` (the
foundation); ``hub``; ``data``; ``models``; ``evaluation``; ``training``; ``frozen_features``;
``serving``; ``arguments`` (every recipe's flags, in one place); ``study``; ``commands`` (what each
recipe runs).
"""

from .data.tokenizer import load_tokenizer
from .models.gpt2 import GPT2, GPT2Config

__all__ = ["GPT2", "GPT2Config", "load_tokenizer"]
__version__ = "0.1.0"
