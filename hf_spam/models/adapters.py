"""LoRA adapters (peft) for every classifier: our GPT-2 and any transformers sequence classifier.

``--trainable lora`` wraps the classifier with :func:`peft.get_peft_model`: low-rank adapters on every
attention and MLP projection of the transformer blocks (found generically: each ``nn.Linear`` or
transformers ``Conv1D`` inside a block), while the classification head (``score``, or ``classifier`` plus
BERT's ``pooler``) is trained in full as a peft ``modules_to_save`` copy, saved with the adapter and never
re-initialised on load. The frozen base is identical to the one a full fine-tune starts from.

A LoRA run folder holds the standard peft adapter (``adapter_config.json``, ``adapter_model.safetensors``
with the head), the tokenizer and ``lora_base.json`` (:data:`~hf_spam.run_folder.ADAPTER_BASE_FILE`): how to
rebuild the base model offline. A pretrained
base is recorded by path or hub id (also peft's ``base_model_name_or_path``); a random base (``--weights
random``) by the seed that recreates it bit for bit — its weights are not saved. Either way the file holds
a sha256 fingerprint of the frozen base weights, checked on load.

peft facts handled here: transformers' GPT-2 uses ``Conv1D`` (``fan_in_fan_out=True``), our GPT-2 and
every other model ``nn.Linear`` (False); decoders need ``config.pad_token_id`` (set by
:func:`~hf_spam.models.build.build_classifier`); embeddings are never targets, so tied embeddings stay tied
(our classifier and transformers' ``*ForSequenceClassification`` have no LM head to tie anyway).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from ..data.tokenizer import load_tokenizer
from ..hub.access import is_local
from ..run_folder import ADAPTER_BASE_FILE, MERGED_DIR, OPERATING_POINT_FILE, is_adapter_run
from .arguments import ModelArguments
from .build import build_classifier
from .classifier import GPT2Classifier
from .fingerprint import update_with_tensors
from .trainable import model_parts, parameter_counts

logger = logging.getLogger(__name__)

SEQ_CLS_HEADS = ("classifier", "score")


@dataclass
class LoraArguments:
    """LoRA adapter settings (used with ``--trainable lora``)."""

    lora_r: int = field(default=16, metadata={"help": "LoRA rank r"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (updates are scaled by alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA branch"})
    lora_targets: list[str] | None = field(
        default=None,
        metadata={
            "help": "module-name patterns to adapt, as peft matches them (a name suffix such as c_attn or "
            "q_proj); default: every attention and MLP projection of the transformer blocks"
        },
    )
    lora_layers: int | None = field(
        default=None,
        metadata={
            "help": "adapt only the top N transformer blocks (default: all); the blocks below stay frozen, "
            "so --cache_frozen auto computes them once per example"
        },
    )
    merge: bool = field(
        default=False, metadata={"help": "also write the merged model (plain format) to <run>/merged"}
    )

    def __post_init__(self) -> None:
        if self.lora_r < 1:
            raise ValueError(f"--lora_r must be >= 1, got {self.lora_r}")
        if self.lora_layers is not None and self.lora_layers < 1:
            raise ValueError(f"--lora_layers must be >= 1, got {self.lora_layers}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")


def check_adapter_arguments(model_args: ModelArguments, lora_args: LoraArguments | None) -> None:
    """``--merge`` and ``--lora_targets`` only make sense with ``--trainable lora``: say so in one line."""
    if lora_args is None or model_args.trainable == "lora":
        return
    if lora_args.merge:
        raise ValueError("--merge needs --trainable lora (full fine-tunes are saved merged already)")
    if lora_args.lora_targets:
        raise ValueError("--lora_targets needs --trainable lora")
    if lora_args.lora_layers:
        raise ValueError("--lora_layers needs --trainable lora")


def _qualified_names(model: nn.Module) -> dict[int, str]:
    return {id(module): name for name, module in model.named_modules()}


def head_module_names(model: nn.Module) -> list[str]:
    """Qualified names of the classification head modules (``score``; ``classifier`` + ``bert.pooler``).

    Only modules with weights: a head's dropout has none, and its name would match every dropout.
    """
    names = _qualified_names(model)
    return [names[id(m)] for m in model_parts(model)[2] if next(m.parameters(), None) is not None]


def default_target_modules(model: nn.Module) -> str:
    """A regex (peft full-name match) for every ``nn.Linear`` / ``Conv1D`` inside the transformer blocks.

    E.g. ``transformer\\.h\\.\\d+\\.(attn\\.c_attn|attn\\.c_proj|mlp\\.c_fc|mlp\\.c_proj)`` for GPT-2.
    Found from the modules themselves, so any architecture :func:`~hf_spam.models.trainable.model_parts` knows
    works.
    """
    blocks = model_parts(model)[0]
    prefix = _qualified_names(model)[id(blocks)]
    inner = sorted(
        {
            name
            for block in blocks
            for name, module in block.named_modules()
            if isinstance(module, (nn.Linear, Conv1D))
        }
    )
    if not inner:
        raise ValueError(f"no nn.Linear or Conv1D inside the blocks of {type(model).__name__}")
    return rf"{re.escape(prefix)}\.\d+\.({'|'.join(map(re.escape, inner))})"


def lora_config(model: nn.Module, args: LoraArguments) -> Any:
    """The ``peft.LoraConfig`` for ``model``: targets, head in ``modules_to_save``, ``fan_in_fan_out``."""
    from peft import LoraConfig

    targets: str | list[str] = args.lora_targets or default_target_modules(model)
    heads = head_module_names(model)
    matched = [name for name, module in model.named_modules() if _matches(targets, name)]
    in_head = [name for name in matched if any(name == h or name.startswith(h + ".") for h in heads)]
    if in_head:
        raise ValueError(
            f"--lora_targets {targets} match head module(s) {in_head}; the head {heads} is trained in full"
            " (modules_to_save): leave it out of the targets"
        )
    if not matched:
        raise ValueError(f"--lora_targets {targets} match no module of {type(model).__name__}")
    if args.lora_layers is not None:
        matched = _in_top_blocks(model, matched, args.lora_layers)
        targets = "|".join(map(re.escape, matched))  # peft ignores layers_to_transform for regex targets
    modules = dict(model.named_modules())
    conv1d = [isinstance(modules[name], Conv1D) for name in matched]
    if any(conv1d) and not all(conv1d):
        raise ValueError("--lora_targets mix Conv1D and nn.Linear modules; peft needs one fan_in_fan_out")
    # SEQ_CLS (peft's examples; AutoPeftModelForSequenceClassification) adds classifier and score to
    # modules_to_save itself; its forward reads a transformers config, which our GPT-2 does not have
    task_type = None if isinstance(model, GPT2Classifier) else "SEQ_CLS"
    if task_type:
        heads = [name for name in heads if name not in SEQ_CLS_HEADS]
    return LoraConfig(
        task_type=task_type,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=all(conv1d),  # transformers' GPT-2 Conv1D stores weights (in, out)
        modules_to_save=heads,
    )


def _in_top_blocks(model: nn.Module, names: list[str], layers: int) -> list[str]:
    """The module names among ``names`` that lie inside the top ``layers`` transformer blocks."""
    blocks = model_parts(model)[0]
    if layers > len(blocks):
        raise ValueError(f"--lora_layers {layers}: {type(model).__name__} has only {len(blocks)} blocks")
    prefix = _qualified_names(model)[id(blocks)]
    top = {str(i) for i in range(len(blocks) - layers, len(blocks))}
    return [n for n in names if n.startswith(prefix + ".") and n[len(prefix) + 1 :].split(".")[0] in top]


def _matches(targets: str | list[str], name: str) -> bool:
    """peft's own rule: a regex matches the full name; a list entry matches the name or a dotted suffix."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


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
    lora_args: LoraArguments,
    seed: int,
) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier wrapped in LoRA adapters, and the record (``lora_base.json``) that rebuilds its base.

    The base is built right after ``torch.manual_seed(seed)``, so a random base is recreated from the seed.
    """
    torch.manual_seed(seed)
    base = build_classifier(model_args, id2label, tokenizer)
    record = _base_record(base, model_args, id2label, seed)
    return apply_adapter(base, lora_args, record["base_model_name_or_path"]), record


def apply_adapter(model: nn.Module, args: LoraArguments, base_name: str | None = None) -> nn.Module:
    """``peft.get_peft_model(model, lora_config(model, args))``; logs what trains. Modifies ``model``.

    ``base_name`` (a path or hub id, None for a random base) goes to ``adapter_config.json`` as peft's
    ``base_model_name_or_path``.
    """
    from peft import get_peft_model

    model.name_or_path = base_name  # where get_peft_model reads it
    config = lora_config(model, args)
    peft_model = get_peft_model(model, config)
    counts = parameter_counts(peft_model)
    logger.info(
        "trainable=lora (r=%d, alpha=%d, targets %s, head %s): %d of %d parameters (%.2f%%)",
        args.lora_r, args.lora_alpha, config.target_modules, sorted(config.modules_to_save),
        counts["trainable"], counts["total"], 100 * counts["trainable"] / counts["total"],
    )  # fmt: skip
    return peft_model


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
) -> None:
    """Write the peft adapter (with the head), the tokenizer and the base record to ``run_dir``; with
    ``merge``, also the model merged in memory (``run_dir/merged``, see :func:`write_merged`).

    Merging changes ``model`` in place (peft's ``merge_and_unload``): call this last.
    """
    run_dir = Path(run_dir)
    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    (run_dir / ADAPTER_BASE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    size = (run_dir / "adapter_model.safetensors").stat().st_size
    logger.info("LoRA adapter saved to %s (%.2f MB)", run_dir, size / 2**20)
    if merge:
        write_merged(model.merge_and_unload(), tokenizer, run_dir / MERGED_DIR, run_dir)


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
            base = build_classifier(model_args, id2label, tokenizer)
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
    return model if is_trainable else model.eval()


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
    """Merge a saved adapter run into its base (rebuilt offline); write the plain model to ``output``
    (default ``<run_dir>/merged``)."""
    if not is_adapter_run(run_dir):
        raise FileNotFoundError(f"{run_dir}: no adapter_config.json; merge needs a --trainable lora run")
    output = Path(output) if output is not None else Path(run_dir) / MERGED_DIR
    tokenizer = load_tokenizer(run_dir)
    merged = load_adapter_classifier(run_dir, tokenizer).merge_and_unload()
    return write_merged(merged, tokenizer, output, run_dir)
