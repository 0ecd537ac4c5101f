"""peft adapters for every classifier (our GPT-2, transformers decoders and encoders): LoRA, (IA)^3,
prompt tuning, P-tuning and prefix tuning (:mod:`.configs`), correct under padding (:mod:`.prompt_inputs`),
saved, loaded and merged (:mod:`.run`)."""

from .arguments import DEFAULT_LEARNING_RATES, MERGEABLE, PROMPT_LEARNING, AdapterArguments
from .configs import default_target_modules, head_module_names, peft_config
from .run import (
    apply_adapter,
    base_fingerprint,
    build_adapter_classifier,
    check_adapter_arguments,
    load_adapter_classifier,
    merge_adapter_run,
    save_adapter_run,
    write_merged,
)

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "MERGEABLE",
    "PROMPT_LEARNING",
    "AdapterArguments",
    "apply_adapter",
    "base_fingerprint",
    "build_adapter_classifier",
    "check_adapter_arguments",
    "default_target_modules",
    "head_module_names",
    "load_adapter_classifier",
    "merge_adapter_run",
    "peft_config",
    "save_adapter_run",
    "write_merged",
]
