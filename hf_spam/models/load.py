"""Load a saved classifier from a local folder: ours, transformers', or an adapter on its rebuilt base."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from ..run_folder import is_adapter_run
from .adapters import load_adapter_classifier
from .build import reads_any_padding
from .classifier import GPT2Classifier, config_dict


def load_classifier(
    directory: str | os.PathLike, tokenizer: PreTrainedTokenizerBase | None = None
) -> nn.Module:
    """A saved classifier in eval mode: ours when the folder says so (``hf_spam`` in config.json), else
    transformers'; an adapter run (a peft adapter) as a ``peft.PeftModel`` on its rebuilt base.

    ``directory`` is a local folder: resolve a hub repo id first (:func:`hf_spam.hub.resolve_run`, which a
    command's entry point does once). ``tokenizer``: the folder's tokenizer if the caller loaded it already.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such model folder")
    if is_adapter_run(directory):
        return load_adapter_classifier(directory, tokenizer)
    if (config_dict(directory).get("hf_spam") or {}).get("class") == GPT2Classifier.__name__:
        return GPT2Classifier.from_transformers_folder(directory)
    return reads_any_padding(AutoModelForSequenceClassification.from_pretrained(directory)).eval()
