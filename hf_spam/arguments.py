"""Every recipe's flags in one place: the argument groups, defined beside the code that uses them, and
which groups each recipe parses.

    from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args

A recipe's flags are the fields of its groups (:data:`RECIPES`); ``parse_args`` reads them from the
command line after an optional YAML file of defaults. The study runner (:mod:`hf_spam.study`) reads the
same table to check a study's rows before anything runs, and starts each recipe as ``python -m
<module>`` from the installed package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cli import parse_args
from .data import DataArguments
from .evaluation import OperatingPointArguments
from .frozen_features import FeatureArguments
from .in_context import InContextArguments
from .models import ModelArguments
from .models.adapters import AdapterArguments
from .models.arguments import Implementation
from .models.trainable import Trainable
from .serving import ServingArguments
from .training.arguments import TrainArguments

__all__ = [
    "RECIPES",
    "AdapterArguments",
    "DataArguments",
    "EncoderModelArguments",
    "FeatureArguments",
    "InContextArguments",
    "ModelArguments",
    "OperatingPointArguments",
    "RecipeSpec",
    "ServingArguments",
    "TrainArguments",
    "parse_args",
]


@dataclass
class EncoderModelArguments(ModelArguments):
    """ModelArguments with encoder defaults: bert-base-uncased through transformers, all layers trained."""

    model: str = field(default="bert-base-uncased", metadata={"help": "an encoder hub id or local folder"})
    implementation: Implementation = field(
        default="transformers", metadata={"help": "encoders run through transformers"}
    )
    trainable: Trainable = field(
        default="all", metadata={"help": "which parameters are trained (lora: adapters + head)"}
    )

    def __post_init__(self) -> None:
        if self.implementation != "transformers":
            raise ValueError(
                "bert_classifier.py runs encoders through transformers; GPT-2: gpt2_classifier.py"
            )


FINE_TUNING = (ModelArguments, DataArguments, TrainArguments, AdapterArguments, OperatingPointArguments)


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe: the module that runs it (``python -m``), the argument groups it parses, and whether it
    runs under ``accelerate launch``."""

    module: str
    groups: tuple[type, ...]
    uses_accelerate: bool = True

    @property
    def script(self) -> str:
        """The recipe script's file name under ``recipes/`` (the module's last part)."""
        return self.module.rsplit(".", 1)[-1] + ".py"


RECIPES: dict[str, RecipeSpec] = {
    "gpt2_classifier": RecipeSpec("hf_spam.commands.gpt2_classifier", FINE_TUNING),
    "bert_classifier": RecipeSpec(
        "hf_spam.commands.bert_classifier", (EncoderModelArguments, *FINE_TUNING[1:])
    ),
    "frozen_features": RecipeSpec(
        "hf_spam.commands.frozen_features", (FeatureArguments, DataArguments), uses_accelerate=False
    ),
    "in_context": RecipeSpec(
        "hf_spam.commands.in_context", (InContextArguments, DataArguments), uses_accelerate=False
    ),
}
