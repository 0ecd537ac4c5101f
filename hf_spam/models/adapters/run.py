"""An adapter run: build the classifier with peft's adapter, save it with the record of its base, load it
back offline, merge it.

An adapter run folder holds the standard peft adapter (``adapter_config.json``,
``adapter_model.safetensors`` with the head), the tokenizer and ``lora_base.json``
(:data:`~hf_spam.run_folder.ADAPTER_BASE_FILE`, named after the first method; every method writes it): how
to rebuild the base model offline. A pretrained base is recorded by path or hub id (also peft's
``base_model_name_or_path``); a random base (``--weights random``) by the seed that recreates it bit for
bit — its weights are not saved. Either way the file holds a sha256 fingerprint of the frozen base
weights, checked on load.

LoRA and (IA)^3 wrap our GPT-2 itself; the prompt methods need a transformers classifier (peft reads its
config and feeds it embeddings or a key/value cache), so our GPT-2 goes through its exact transformers
export (:meth:`~hf_spam.models.classifier.GPT2Classifier.to_transformers`), made correct for padding on
either side by :mod:`.prompt_inputs`. Embeddings are never targets, so tied embeddings stay tied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ...data.tokenizer import load_tokenizer
from ...hub.access import is_local
from ...run_folder import ADAPTER_BASE_FILE, MERGED_DIR, OPERATING_POINT_FILE, is_adapter_run
from ..arguments import ModelArguments
from ..build import build_classifier, positions_from_mask
from ..classifier import GPT2Classifier
from ..fingerprint import update_with_tensors
from ..trainable import PEFT_METHODS, parameter_counts
from .arguments import MERGEABLE, METHOD_FLAGS, PROMPT_LEARNING, AdapterArguments
from .configs import head_module_names, peft_config
from .prompt_inputs import accept_past_key_values, last_real_token_last

logger = logging.getLogger(__name__)
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def check_adapter_arguments(model_args: ModelArguments, args: AdapterArguments | None) -> None:
    """Adapter flags only with a method that uses them, and ``--merge`` only for a method that merges:
    one line naming the flag, before anything loads."""
    if args is None:
        return
    method, defaults = model_args.trainable, AdapterArguments()
    given = [f.name for f in fields(args) if getattr(args, f.name) != getattr(defaults, f.name)]
    for flag in given:
        owners = [m for m, flags in METHOD_FLAGS.items() if flag in flags]
        if method not in owners:
            what = "full fine-tunes are saved merged already" if flag == "merge" else f"not {method}"
            raise ValueError(f"--{flag} needs --trainable {' or '.join(owners)} ({what})")
    ours = model_args.implementation == "hf_spam"
    if method in PROMPT_LEARNING and ours and model_args.pooling == "first" and model_args.causal:
        raise ValueError(
            f"--trainable {method} with --pooling first: the first token is a virtual one, which sees "
            "nothing of the text in a causal model; use --pooling last (default) or mean"
        )


def prepare_base(base: nn.Module, method: str) -> nn.Module:
    """The base a method's adapter goes on: for a prompt method, a transformers classifier (our GPT-2's
    export) that pools the last real token and counts positions from the mask with virtual tokens in
    front (:mod:`.prompt_inputs`); the model itself for LoRA and (IA)^3."""
    if method not in PROMPT_LEARNING:
        return base
    if isinstance(base, GPT2Classifier):
        base = positions_from_mask(base.to_transformers())
    base = last_real_token_last(base)
    return accept_past_key_values(base) if method == "prefix_tuning" else base


def base_fingerprint(model: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every base weight outside the head."""
    heads = tuple(name + "." for name in head_module_names(model))
    digest = hashlib.sha256()
    update_with_tensors(
        digest, (item for item in model.state_dict().items() if not item[0].startswith(heads))
    )
    return digest.hexdigest()


def build_adapter_classifier(
    model_args: ModelArguments,
    id2label: dict[int, str],
    tokenizer: PreTrainedTokenizerBase,
    args: AdapterArguments,
    seed: int,
) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier wrapped in the adapter ``--trainable`` names, and the record (``lora_base.json``)
    that rebuilds its base.

    The base is built right after ``torch.manual_seed(seed)``, so a random base is recreated from the seed.
    """
    method = model_args.trainable
    if method not in PEFT_METHODS:
        raise ValueError(f"--trainable {method} is not an adapter method; choose one of {PEFT_METHODS}")
    check_adapter_arguments(model_args, args)
    torch.manual_seed(seed)
    base = prepare_base(build_classifier(model_args, id2label, tokenizer), method)
    record = _base_record(base, model_args, id2label, seed)
    return apply_adapter(base, method, args, record["base_model_name_or_path"], tokenizer), record


def apply_adapter(
    model: nn.Module,
    method: str,
    args: AdapterArguments,
    base_name: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> nn.Module:
    """``peft.get_peft_model`` with the config of ``method`` (:func:`~.configs.peft_config`); logs what
    trains. Modifies ``model``. ``base_name`` (a path or hub id, None for a random base) goes to
    ``adapter_config.json`` as peft's ``base_model_name_or_path``; ``tokenizer`` encodes
    ``--prompt_init_text``."""
    from peft import get_peft_model

    model.name_or_path = base_name  # where get_peft_model reads it
    config = peft_config(model, method, args)
    peft_model = get_peft_model(model, config)
    if method == "prompt_tuning" and args.prompt_init == "text":
        if tokenizer is None:
            raise ValueError("--prompt_init text needs the tokenizer to encode --prompt_init_text")
        init_prompt_from_text(peft_model, tokenizer, args.prompt_init_text or "")
    counts = parameter_counts(peft_model)
    logger.info(
        "trainable=%s (%s; head %s): %d of %d parameters (%.3f%%)",
        method, _settings(config), sorted(config.modules_to_save or []), counts["trainable"], counts["total"],
        100 * counts["trainable"] / counts["total"],
    )  # fmt: skip
    return peft_model


def _settings(config: Any) -> str:
    keys = ("r", "lora_alpha", "target_modules", "feedforward_modules", "num_virtual_tokens",
            "prompt_tuning_init", "encoder_hidden_size", "prefix_projection")  # fmt: skip
    return ", ".join(f"{k}={getattr(config, k)}" for k in keys if getattr(config, k, None) is not None)


def init_prompt_from_text(peft_model: nn.Module, tokenizer: PreTrainedTokenizerBase, text: str) -> None:
    """Prompt tuning's text initialisation, as peft does it (the text's token embeddings, repeated or cut
    to the number of virtual tokens), from the run's own tokenizer (peft would load one by name)."""
    config = peft_model.active_peft_config
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"--prompt_init_text {text!r} has no tokens")
    ids = (ids * math.ceil(config.num_virtual_tokens / len(ids)))[: config.num_virtual_tokens]
    embeddings = peft_model.get_base_model().get_input_embeddings()
    with torch.no_grad():
        vectors = embeddings(torch.tensor(ids, device=embeddings.weight.device))
        peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight.copy_(vectors)


def _base_record(
    base: nn.Module, model_args: ModelArguments, id2label: dict[int, str], seed: int
) -> dict[str, Any]:
    args = asdict(model_args)
    if is_local(model_args.model):  # absolute, so the run folder loads from any working directory
        args["model"] = str(Path(os.fspath(model_args.model)).expanduser().resolve())
    args["tokenizer"] = None  # the run folder holds the tokenizer
    pretrained = model_args.weights == "pretrained"
    return {
        "model_args": args,
        "id2label": {str(k): v for k, v in id2label.items()},
        "seed": seed,
        "base_model_name_or_path": args["model"] if pretrained else None,
        "rebuild": "from the pretrained weights" if pretrained else f"random init, torch.manual_seed({seed})",
        "fingerprint_sha256": base_fingerprint(base),
    }


def save_adapter_run(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    run_dir: str | os.PathLike,
    record: dict[str, Any],
    merge: bool = False,
) -> float:
    """Write the peft adapter (with the head), the tokenizer and the base record to ``run_dir``; with
    ``merge``, also the model merged in memory (``run_dir/merged``, see :func:`write_merged`). Returns the
    adapter's size in MiB.

    Merging changes ``model`` in place (peft's ``merge_and_unload``): call this last.
    """
    run_dir = Path(run_dir)
    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    (run_dir / ADAPTER_BASE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    size = (run_dir / ADAPTER_WEIGHTS).stat().st_size / 2**20
    logger.info("%s adapter saved to %s (%.2f MB)", record["model_args"]["trainable"], run_dir, size)
    if merge:
        write_merged(model.merge_and_unload(), tokenizer, run_dir / MERGED_DIR, run_dir)
    return size


def load_adapter_classifier(
    directory: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    is_trainable: bool = False,
) -> nn.Module:
    """Rebuild an adapter run's base offline, check its fingerprint, load the adapter: a ``PeftModel``.

    ``tokenizer``: the run's tokenizer when the caller has it loaded already (else read from the folder).
    """
    from peft import PeftModel

    directory = Path(directory)
    record_file = directory / ADAPTER_BASE_FILE
    if not record_file.is_file():
        raise FileNotFoundError(
            f"{record_file} not found: {directory} holds a peft adapter but not the hf_spam record of its"
            " base model; load it with peft.PeftModel.from_pretrained(base_model, folder)"
        )
    record = json.loads(record_file.read_text())
    model_args = ModelArguments(**record["model_args"])
    id2label = {int(k): v for k, v in record["id2label"].items()}
    tokenizer = tokenizer or load_tokenizer(directory)
    with torch.random.fork_rng(devices=[]), _quiet_transformers():  # the caller's RNG is left as it was
        torch.manual_seed(record["seed"])
        try:
            base = prepare_base(build_classifier(model_args, id2label, tokenizer), model_args.trainable)
        except OSError as err:
            what = f"{record_file}: cannot rebuild the base model {model_args.model!r}"
            raise OSError(f"{what}: {err}") from err
    found, expected = base_fingerprint(base), record["fingerprint_sha256"]
    if found != expected:
        raise ValueError(
            f"{record_file}: the rebuilt base model ({model_args.model}, {record['rebuild']}) is not the one"
            f" the adapter was trained on (sha256 {found[:12]} != {expected[:12]}); restore that base"
            " model (same folder, same torch version for a random init)"
        )
    model = PeftModel.from_pretrained(base, directory, is_trainable=is_trainable)
    return model if is_trainable else model.eval().requires_grad_(False)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' "head newly initialised" load report: the adapter brings the trained head."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def write_merged(
    merged: nn.Module, tokenizer: PreTrainedTokenizerBase, output: Path, run_dir: str | os.PathLike
) -> Path:
    """Save a merged model and its tokenizer to ``output``, with the run's operating point.

    Our GPT-2 is written as transformers' ``GPT2ForSequenceClassification``, so ``transformers.pipeline``
    loads it like a full fine-tune.
    """
    merged.save_pretrained(output)
    tokenizer.save_pretrained(output)
    point = Path(run_dir) / OPERATING_POINT_FILE
    if point.is_file():  # the run's threshold and temperature go with the merged model
        shutil.copyfile(point, output / OPERATING_POINT_FILE)
    logger.info("merged model written to %s", output)
    return output


def merge_adapter_run(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Merge a saved LoRA or (IA)^3 run into its base (rebuilt offline); write the plain model to
    ``output`` (default ``<run_dir>/merged``)."""
    if not is_adapter_run(run_dir):
        raise FileNotFoundError(f"{run_dir}: no adapter_config.json; merging needs an adapter run")
    record = json.loads((Path(run_dir) / ADAPTER_BASE_FILE).read_text())
    method = record["model_args"]["trainable"]
    if method not in MERGEABLE:
        raise ValueError(
            f"{run_dir}: a {method} adapter has nothing to merge (its virtual tokens are inputs)"
        )
    output = Path(output) if output is not None else Path(run_dir) / MERGED_DIR
    tokenizer = load_tokenizer(run_dir)
    merged = load_adapter_classifier(run_dir, tokenizer).merge_and_unload()
    return write_merged(merged, tokenizer, output, run_dir)
