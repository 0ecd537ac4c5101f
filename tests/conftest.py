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
    from hf_spam.tokenizer import load_tokenizer

    return load_tokenizer(gpt2_tokenizer_dir)
