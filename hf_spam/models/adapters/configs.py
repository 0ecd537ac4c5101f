"""peft's config for each adapter method, with what it trains found from the model itself.

- LoRA: every ``nn.Linear`` / transformers ``Conv1D`` inside the transformer blocks (or ``--lora_targets``),
  optionally in the top ``--lora_layers`` blocks only.
- (IA)^3: keys, values and the MLP's down projection, from peft's own per-architecture table (our GPT-2
  uses GPT-2's entry), or ``--ia3_targets`` / ``--ia3_feedforward``; optionally the top ``--ia3_layers``.
- Prompt tuning, P-tuning, prefix tuning: ``num_virtual_tokens`` virtual tokens; peft reads the sizes
  (layers, heads, key/value heads under grouped-query attention) from the model's config.

The classification head (``score``; ``classifier`` + BERT's ``pooler``) is trained in full and saved with
the adapter (peft ``modules_to_save``) for every method. transformers' GPT-2 stores its projections as
``Conv1D`` (``fan_in_fan_out=True``); every other model ``nn.Linear`` (False).
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn
from transformers.pytorch_utils import Conv1D

from ..classifier import GPT2Classifier
from ..trainable import model_parts
from .arguments import AdapterArguments

SEQ_CLS_HEADS = ("classifier", "score")  # peft's SEQ_CLS task adds these to modules_to_save itself


def qualified_names(model: nn.Module) -> dict[int, str]:
    """``id(module) -> its qualified name`` for every module of ``model``."""
    return {id(module): name for name, module in model.named_modules()}


def head_module_names(model: nn.Module) -> list[str]:
    """Qualified names of the classification head modules (``score``; ``classifier`` + ``bert.pooler``).

    Only modules with weights: a head's dropout has none, and its name would match every dropout.
    """
    names = qualified_names(model)
    return [names[id(m)] for m in model_parts(model)[2] if next(m.parameters(), None) is not None]


def default_target_modules(model: nn.Module) -> str:
    """A regex (peft full-name match) for every ``nn.Linear`` / ``Conv1D`` inside the transformer blocks.

    E.g. ``transformer\\.h\\.\\d+\\.(attn\\.c_attn|attn\\.c_proj|mlp\\.c_fc|mlp\\.c_proj)`` for GPT-2.
    Found from the modules themselves, so any architecture :func:`~hf_spam.models.trainable.model_parts`
    knows works.
    """
    blocks = model_parts(model)[0]
    prefix = qualified_names(model)[id(blocks)]
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


def matches(targets: str | list[str], name: str) -> bool:
    """peft's own rule: a regex matches the full name; a list entry matches the name or a dotted suffix."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def in_top_blocks(model: nn.Module, names: list[str], layers: int, flag: str) -> list[str]:
    """The module names among ``names`` that lie inside the top ``layers`` transformer blocks."""
    blocks = model_parts(model)[0]
    if layers > len(blocks):
        raise ValueError(f"--{flag} {layers}: {type(model).__name__} has only {len(blocks)} blocks")
    prefix = qualified_names(model)[id(blocks)]
    top = {str(i) for i in range(len(blocks) - layers, len(blocks))}
    return [n for n in names if n.startswith(prefix + ".") and n[len(prefix) + 1 :].split(".")[0] in top]


def task_type(model: nn.Module) -> str | None:
    """``SEQ_CLS`` for transformers classifiers (peft's examples; AutoPeftModelForSequenceClassification);
    None for our GPT-2, whose config is not a transformers config (peft then wraps it as a custom model)."""
    return None if isinstance(model, GPT2Classifier) else "SEQ_CLS"


def saved_heads(model: nn.Module, leaves: bool = False) -> list[str]:
    """The head modules to train in full and save with the adapter, less those SEQ_CLS adds itself.

    ``leaves``: a head module made of others (BERT's ``pooler``) is named by its leaves with weights
    (``pooler.dense``): peft's (IA)^3 merge replaces every saved module by its base and expects a weight.
    """
    heads = head_module_names(model)
    if leaves:
        modules = dict(model.named_modules())
        heads = [
            f"{head}.{child}" if child else head
            for head in heads
            for child, module in modules[head].named_modules()
            if next(module.parameters(recurse=False), None) is not None
        ]
    return [name for name in heads if name not in SEQ_CLS_HEADS] if task_type(model) else heads


def _resolve_targets(model: nn.Module, targets: str | list[str], flag: str, layers: int | None) -> list[str]:
    """The modules ``targets`` match (none in the head), restricted to the top ``layers`` blocks."""
    heads = head_module_names(model)
    matched = [name for name, _ in model.named_modules() if matches(targets, name)]
    in_head = [name for name in matched if any(name == h or name.startswith(h + ".") for h in heads)]
    if in_head:
        raise ValueError(
            f"--{flag} {targets} match head module(s) {in_head}; the head {heads} is trained in full"
            " (modules_to_save): leave it out of the targets"
        )
    if not matched:
        raise ValueError(f"--{flag} {targets} match no module of {type(model).__name__}")
    if layers is not None:
        matched = in_top_blocks(model, matched, layers, flag.replace("targets", "layers"))
    return matched


def _fan_in_fan_out(model: nn.Module, names: list[str], flag: str) -> bool:
    modules = dict(model.named_modules())
    conv1d = [isinstance(modules[name], Conv1D) for name in names]
    if any(conv1d) and not all(conv1d):
        raise ValueError(f"--{flag} mix Conv1D and nn.Linear modules; peft needs one fan_in_fan_out")
    return all(conv1d)  # transformers' GPT-2 Conv1D stores weights (in, out)


def lora_config(model: nn.Module, args: AdapterArguments) -> Any:
    """The ``peft.LoraConfig`` for ``model``: targets, head in ``modules_to_save``, ``fan_in_fan_out``."""
    from peft import LoraConfig

    targets: str | list[str] = args.lora_targets or default_target_modules(model)
    matched = _resolve_targets(model, targets, "lora_targets", args.lora_layers)
    if args.lora_layers is not None:
        targets = "|".join(map(re.escape, matched))  # peft ignores layers_to_transform for regex targets
    return LoraConfig(
        task_type=task_type(model),
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=_fan_in_fan_out(model, matched, "lora_targets"),
        modules_to_save=saved_heads(model),
    )


def ia3_defaults(model: nn.Module) -> tuple[list[str], list[str]]:
    """peft's (IA)^3 targets and feed-forward modules for the model's architecture (our GPT-2: GPT-2's)."""
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
    )
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS,
    )

    model_type = "gpt2" if isinstance(model, GPT2Classifier) else getattr(model.config, "model_type", None)
    if model_type not in TARGETS or model_type not in FEEDFORWARD:
        raise ValueError(
            f"(IA)^3: peft has no default targets for model type {model_type!r}; name them with "
            "--ia3_targets and --ia3_feedforward (e.g. k_proj v_proj down_proj and down_proj)"
        )
    return list(TARGETS[model_type]), list(FEEDFORWARD[model_type])


def ia3_config(model: nn.Module, args: AdapterArguments) -> Any:
    """The ``peft.IA3Config`` for ``model``: scaled keys, values and feed-forward inputs, head saved."""
    from peft import IA3Config

    targets, feedforward = ia3_defaults(model) if not args.ia3_targets else (args.ia3_targets, [])
    feedforward = args.ia3_feedforward if args.ia3_feedforward is not None else feedforward
    matched = _resolve_targets(model, targets, "ia3_targets", args.ia3_layers)
    ff = [name for name in matched if matches(feedforward, name)]
    unknown = [name for name in feedforward if not any(matches([name], m) for m in matched)]
    if unknown:
        raise ValueError(f"--ia3_feedforward {unknown}: not among the (IA)^3 targets {targets}")
    return IA3Config(
        task_type=task_type(model),
        target_modules=matched,
        feedforward_modules=ff,
        fan_in_fan_out=_fan_in_fan_out(model, matched, "ia3_targets"),
        modules_to_save=saved_heads(model, leaves=True),
    )


def prompt_learning_config(model: nn.Module, method: str, args: AdapterArguments) -> Any:
    """peft's config for prompt tuning, P-tuning (``PromptEncoderConfig``) or prefix tuning; ``model`` is a
    transformers classifier (our GPT-2 goes through its transformers export)."""
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, PromptTuningInit

    common = {"task_type": "SEQ_CLS", "num_virtual_tokens": args.num_virtual_tokens,
              "modules_to_save": saved_heads(model)}  # fmt: skip
    if method == "prompt_tuning":
        # text init is done by hf_spam from the run's own tokenizer (peft would load one by name)
        init = PromptTuningInit.SAMPLE_VOCAB if args.prompt_init == "vocab" else PromptTuningInit.RANDOM
        return PromptTuningConfig(prompt_tuning_init=init, **common)
    if method == "p_tuning":
        return PromptEncoderConfig(encoder_hidden_size=args.encoder_hidden_size, **common)
    return PrefixTuningConfig(
        prefix_projection=args.prefix_projection, encoder_hidden_size=args.encoder_hidden_size, **common
    )


def peft_config(model: nn.Module, method: str, args: AdapterArguments) -> Any:
    """peft's config of ``method`` for ``model``."""
    if method == "lora":
        return lora_config(model, args)
    if method == "ia3":
        return ia3_config(model, args)
    return prompt_learning_config(model, method, args)
