"""The flags of the in-context recipe: which decoder, prompt, demonstrations and calibration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ..evaluation.operating_point import parse_target
from ..frozen_features.arguments import Dtype
from ..models.arguments import Implementation, Weights

Demos = Literal["random", "knn"]
DEMOS: tuple[str, ...] = get_args(Demos)
Calibrate = Literal["auto", "on", "off"]
CALIBRATE: tuple[str, ...] = get_args(Calibrate)


@dataclass
class InContextArguments:
    """In-context learning: a decoder scores each label word after a prompt of ``k`` labelled examples."""

    model: str = field(
        default="HuggingFaceTB/SmolLM2-135M-Instruct",
        metadata={
            "help": "a decoder: hub id or local folder (transformers), or a GPT-2 size / folder (hf_spam)"
        },
    )
    implementation: Implementation = field(
        default="transformers",
        metadata={"help": "transformers: AutoModelForCausalLM; hf_spam: our GPT-2 (run on its exact export)"},
    )
    weights: Weights = field(
        default="pretrained", metadata={"help": "random: the same architecture, initialised with --seed"}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer hub id or folder (default: the model's, else gpt2)"}
    )
    k: int = field(default=8, metadata={"help": "demonstrations in each prompt (0: zero-shot)"})
    demos: Demos = field(
        default="random",
        metadata={
            "help": "random: one balanced, seeded set from the training split for every query (its key/value "
            "cache is reused); knn: each query's k nearest training texts by cosine similarity"
        },
    )
    embedding_model: str | None = field(
        default=None,
        metadata={
            "help": "--demos knn: the backbone (hub id or folder, through transformers) whose mean-pooled "
            "embeddings pick the neighbours (default: the model itself)"
        },
    )
    label_words: list[str] | None = field(
        default=None,
        metadata={
            "help": "the word the model should answer for each class, e.g. ham=ham spam=spam "
            "(default: the class names)"
        },
    )
    template: str | None = field(
        default=None,
        metadata={
            "help": "a YAML file overriding the prompt template (kind, instruction, query, answer, "
            "separator; default: the tokenizer's chat template when it has one, else a plain one)"
        },
    )
    calibrate: Calibrate = field(
        default="auto",
        metadata={
            "help": "contextual calibration (divide by the label probabilities of content-free inputs): "
            "auto keeps it when it raises validation accuracy"
        },
    )
    threshold_for: str = field(
        default="f1",
        metadata={"help": "binary tasks: the validation threshold for f1, precision@P or recall@R"},
    )
    batch_size: int = field(default=16, metadata={"help": "prompts per forward pass (batched by length)"})
    dtype: Dtype = field(default="float32", metadata={"help": "the decoder's dtype (scores are float32)"})
    seed: int = field(
        default=123, metadata={"help": "seeds the split, the demonstrations and random weights"}
    )
    output_dir: str = field(default="outputs", metadata={"help": "run folders are created inside"})
    run_name: str | None = field(default=None, metadata={"help": "default: incontext-model-dataset-time"})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "delete an existing run folder of the same name (default: that is an error)"},
    )

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"--k {self.k}: the number of demonstrations must be >= 0")
        if self.demos == "knn" and self.k == 0:
            raise ValueError("--demos knn picks neighbours as demonstrations: give --k 1 or more")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
        parse_target(self.threshold_for)
        parse_label_words(self.label_words)
        if self.template is not None and not Path(self.template).is_file():
            raise FileNotFoundError(f"--template {self.template}: no such file")


def parse_label_words(items: list[str] | None) -> dict[str, str]:
    """``["ham=ham", "spam=junk mail"]`` -> ``{"ham": "ham", "spam": "junk mail"}`` (class name -> word)."""
    words: dict[str, str] = {}
    for item in items or []:
        name, sep, word = item.partition("=")
        name, word = name.strip(), word.strip()
        if not sep or not name or not word:
            raise ValueError(f"--label_words {item!r}: expected class=word, e.g. spam=spam")
        if name in words:
            raise ValueError(f"--label_words: class {name!r} is given twice")
        words[name] = word
    return words
