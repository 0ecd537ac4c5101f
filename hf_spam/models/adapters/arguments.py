"""The adapter flags of the fine-tuning recipes (``--trainable lora | ia3 | prompt_tuning | p_tuning |
prefix_tuning``), with peft's names where peft has one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from ..trainable import PEFT_METHODS

MERGEABLE = ("lora", "ia3")  # adapters peft can merge into the base weights (merge_and_unload)
PROMPT_LEARNING = ("prompt_tuning", "p_tuning", "prefix_tuning")  # virtual tokens: nothing to merge
assert set(MERGEABLE + PROMPT_LEARNING) == set(PEFT_METHODS)
PromptInit = Literal["random", "text", "vocab"]
PROMPT_INITS = get_args(PromptInit)
# the learning rate of a method when --learning_rate is not given (LoRA: the book's appendix E, 5e-5)
DEFAULT_LEARNING_RATES = {
    "lora": 5e-5,
    "ia3": 1e-2,
    "prompt_tuning": 1e-3,
    "p_tuning": 1e-4,
    "prefix_tuning": 3e-3,
}
# the flags each method reads: giving one with another --trainable is an error naming it
METHOD_FLAGS = {
    "lora": ("lora_r", "lora_alpha", "lora_dropout", "lora_targets", "lora_layers", "merge"),
    "ia3": ("ia3_targets", "ia3_feedforward", "ia3_layers", "merge"),
    "prompt_tuning": ("num_virtual_tokens", "prompt_init", "prompt_init_text"),
    "p_tuning": ("num_virtual_tokens", "encoder_hidden_size"),
    "prefix_tuning": ("num_virtual_tokens", "encoder_hidden_size", "prefix_projection"),
}


@dataclass
class AdapterArguments:
    """peft adapter settings, used with ``--trainable`` set to one of :data:`PEFT_METHODS`."""

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
    ia3_targets: list[str] | None = field(
        default=None,
        metadata={
            "help": "(IA)^3: modules whose activations are scaled, as peft matches them (default per "
            "architecture, peft's own table: keys, values and the MLP's down projection)"
        },
    )
    ia3_feedforward: list[str] | None = field(
        default=None,
        metadata={
            "help": "(IA)^3: which targets are feed-forward (their input is scaled); default per architecture"
        },
    )
    ia3_layers: int | None = field(
        default=None,
        metadata={
            "help": "(IA)^3 in the top N blocks only (default: all), so the frozen blocks below can be cached"
        },
    )
    num_virtual_tokens: int = field(
        default=20, metadata={"help": "prompt / P- / prefix tuning: the number of virtual tokens"}
    )
    prompt_init: PromptInit = field(
        default="random",
        metadata={
            "help": "prompt tuning: initialise the virtual tokens randomly, from the embeddings of "
            "--prompt_init_text, or from random vocabulary embeddings"
        },
    )
    prompt_init_text: str | None = field(
        default=None,
        metadata={"help": "prompt tuning with --prompt_init text: the text (e.g. 'Is this spam?')"},
    )
    encoder_hidden_size: int = field(
        default=128, metadata={"help": "P-tuning (and prefix tuning with a projection): the encoder's width"}
    )
    prefix_projection: bool = field(
        default=False, metadata={"help": "prefix tuning: reparameterise the prefix through a two-layer MLP"}
    )
    merge: bool = field(
        default=False,
        metadata={"help": "LoRA / (IA)^3: also write the merged model (plain format) to <run>/merged"},
    )

    def __post_init__(self) -> None:
        positive = ("lora_r", "num_virtual_tokens", "encoder_hidden_size")
        optional_positive = ("lora_layers", "ia3_layers")
        for name in positive + optional_positive:
            value = getattr(self, name)
            if (value is not None or name in positive) and value < 1:
                raise ValueError(f"--{name} must be >= 1, got {value}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.prompt_init == "text" and not (self.prompt_init_text or "").strip():
            raise ValueError(
                "--prompt_init text needs --prompt_init_text 'a text' (e.g. 'Is this message spam?')"
            )
        if self.prompt_init_text and self.prompt_init != "text":
            raise ValueError("--prompt_init_text needs --prompt_init text")
