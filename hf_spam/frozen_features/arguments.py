"""The flags of the frozen-features recipe: which features, which backbone, and the logistic regression."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..models.arguments import Implementation, Weights

FeaturePooling = Literal["cls", "first", "last", "mean"]
Dtype = Literal["float32", "bfloat16", "float16"]
Method = Literal["embeddings", "knn", "tfidf", "bow"]
EMBEDDING_METHODS = ("embeddings", "knn")  # the methods that run a frozen backbone
DEFAULT_K_GRID: tuple[int, ...] = (1, 3, 5, 7, 9, 15, 21, 31)  # odd: no tied votes between two classes


@dataclass
class FeatureArguments:
    """Frozen features + scikit-learn: which features, which backbone, and the logistic regression."""

    method: Method = field(
        default="embeddings",
        metadata={
            "help": "embeddings: frozen backbone + LR; knn: frozen backbone + cosine k-nearest-neighbour "
            "vote (nothing trained); tfidf / bow: n-grams + LR (no neural network)"
        },
    )
    analyzer: Literal["word", "char", "best"] = field(
        default="word",
        metadata={
            "help": "tfidf / bow n-grams: word 1-2-grams (lowercased), char 1-5-grams (case-sensitive), "
            "or best: both, the one with the better validation accuracy kept"
        },
    )
    model: str = field(
        default="gpt2",
        metadata={"help": "gpt2 / gpt2-medium / ..., a GPT-2 folder, or (transformers) any hub id / folder"},
    )
    implementation: Implementation = field(
        default="hf_spam", metadata={"help": "hf_spam: our GPT-2; transformers: AutoModel (no head)"}
    )
    weights: Weights = field(
        default="pretrained", metadata={"help": "random: the same architecture, initialised with --seed"}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer hub id or folder (default: the model's, else gpt2)"}
    )
    pooling: FeaturePooling | None = field(
        default=None,
        metadata={
            "help": "cls (= first: [CLS] for BERT), last (last real token), mean (over real tokens); "
            "default: cls for encoders (masked-LM model types), last for decoders"
        },
    )
    batch_size: int = field(default=32, metadata={"help": "texts per forward pass during extraction"})
    dtype: Dtype = field(
        default="float32", metadata={"help": "backbone dtype (features are stored as float32)"}
    )
    C_grid: list[float] = field(
        default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0],
        metadata={"help": "inverse regularisation strengths tried on validation (space separated)"},
    )
    max_iter: int = field(default=1000, metadata={"help": "LogisticRegression max_iter"})
    k_grid: list[int] = field(
        default_factory=lambda: list(DEFAULT_K_GRID),
        metadata={"help": "knn: numbers of neighbours tried on validation (space separated)"},
    )
    output_dir: str = field(default="outputs", metadata={"help": "run folders are created inside"})
    run_name: str | None = field(default=None, metadata={"help": "default: method/model-dataset-time"})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "delete an existing run folder of the same name (default: that is an error)"},
    )
    seed: int = field(default=123, metadata={"help": "seeds the split, random weights and the solver"})
    cache_dir: str | None = field(
        default=None, metadata={"help": "token and feature cache (default: $HF_SPAM_CACHE)"}
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_iter < 1:
            raise ValueError(
                f"--batch_size and --max_iter must be >= 1, got {self.batch_size}, {self.max_iter}"
            )
        if not self.C_grid or min(self.C_grid) <= 0:
            raise ValueError(f"--C_grid needs one or more positive values, got {self.C_grid}")
        if not self.k_grid or min(self.k_grid) < 1:
            raise ValueError(f"--k_grid needs one or more values >= 1, got {self.k_grid}")
