"""Shared fixtures: paths to the real data and tokenizer in ../shared, tiny in-process models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_SPAM_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared; skips the test (with the reason) when the file is not on this machine."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (set HF_SPAM_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def sms_file() -> Path:
    return shared_path("data", "sms_spam", "SMSSpamCollection")


@pytest.fixture(scope="session")
def imdb_dir() -> Path:
    return shared_path("data", "imdb")


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir() -> Path:
    return shared_path("models", "gpt2-tokenizer")


@pytest.fixture(scope="session")
def gpt2_tokenizer(gpt2_tokenizer_dir):
    from hf_spam.data.tokenizer import load_tokenizer

    return load_tokenizer(gpt2_tokenizer_dir)


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.fixture
def online(monkeypatch):
    """Offline mode off, whatever the shell exported (offline machines often set HF_HUB_OFFLINE=1): for
    tests that reach a hub on loopback, or that turn offline mode on themselves."""
    import huggingface_hub

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read from the env at import


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tokenisation caches go to a fresh folder, never to the user's ~/.cache."""
    if "HF_SPAM_CACHE" not in os.environ:
        os.environ["HF_SPAM_CACHE"] = str(tmp_path_factory.mktemp("hf_spam_cache"))
    yield


TINY_GPT2 = {"emb_dim": 32, "n_layers": 2, "n_heads": 2, "context_length": 256, "dropout": 0.0}


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A transformers GPT-2 folder (config + weights) of a tiny model with GPT-2's vocabulary."""
    import torch
    from transformers import GPT2LMHeadModel

    from hf_spam import GPT2Config
    from hf_spam.models.gpt2.weights import config_to_transformers

    path = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(config_to_transformers(GPT2Config(**TINY_GPT2))).save_pretrained(path)
    return path


TINY_BERT_WORDS = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789!?.,'&:/-£")
    + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    + [
        "free",
        "call",
        "win",
        "prize",
        "you",
        "me",
        "ok",
        "the",
        "to",
        "now",
        "txt",
        "claim",
        "urgent",
        "mobile",
        "i",
        "a",
        "and",
        "is",
        "in",
    ]
)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny BERT encoder folder (config, random weights, WordPiece tokenizer), as from the hub."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(TINY_BERT_WORDS), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)  # fmt: skip
    BertModel(config).save_pretrained(path)
    BertTokenizer(vocab={word: i for i, word in enumerate(TINY_BERT_WORDS)}).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny Llama decoder (grouped-query attention: 4 heads, 2 key/value heads; tied embeddings, as
    SmolLM2), GPT-2's vocabulary size."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    return path
