"""Load a tokenizer from a hub id or a local folder, GPT-2's original file names included."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from transformers import AutoTokenizer, GPT2Tokenizer, PreTrainedTokenizerBase

from ..hub.access import from_pretrained_offline_first, is_local

logger = logging.getLogger(__name__)

GPT2_CONTEXT_LENGTH = 1024
_ALTERNATIVES = (
    "Pass a local folder instead, e.g. ../shared/models/gpt2-tokenizer (encoder.json + vocab.bpe) "
    "or one written by tokenizer.save_pretrained()."
)


def load_tokenizer(source: str | os.PathLike = "gpt2", pad_with_eos: bool = True) -> PreTrainedTokenizerBase:
    """Return a fast tokenizer for ``source``: a hub id or a local folder.

    A folder holding OpenAI's original GPT-2 files (``encoder.json`` + ``vocab.bpe``) loads too.
    Tokenizers without a pad token (GPT-2, many decoders) get ``pad_token = eos_token`` when
    ``pad_with_eos`` is true, so batches can be padded; the attention mask, not the pad id, then
    tells real tokens from padding.
    """
    path = Path(os.fspath(source)).expanduser()
    if (
        path.is_dir()
        and (path / "encoder.json").is_file()
        and (path / "vocab.bpe").is_file()
        and not any(
            (path / name).is_file() for name in ("tokenizer.json", "vocab.json", "tokenizer_config.json")
        )
    ):
        tokenizer = GPT2Tokenizer(vocab=str(path / "encoder.json"), merges=str(path / "vocab.bpe"))
        tokenizer.model_max_length = GPT2_CONTEXT_LENGTH
    elif is_local(source):
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(source))
    else:
        tokenizer = from_pretrained_offline_first(
            AutoTokenizer.from_pretrained, str(source), f"tokenizer '{source}'", alternatives=_ALTERNATIVES
        )
    if pad_with_eos and tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer '{source}' has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
        logger.debug("tokenizer %s: pad_token set to eos %r", source, tokenizer.eos_token)
    return tokenizer
