"""Frozen-feature classifiers: embeddings of a frozen backbone, cached on disk, + logistic regression.

The backbone is our GPT-2 (``implementation="hf_spam"``) or any transformers ``AutoModel`` (encoder or
decoder, no head). Each split is tokenised (:func:`hf_spam.data.tokenize`, cached), sorted by length, run in
batches through the backbone (eval and inference mode) with ``Dataset.map``, pooled with
:func:`hf_spam.classifier.pool` and put back in order. The features are cached in
``$HF_SPAM_CACHE/features/<fingerprint>.arrow``, the fingerprint covering the tokenised split (data,
tokenizer, ``max_length``), :meth:`Backbone.identity` (weights, dtype) and the pooling: a second run with the
same backbone and data neither runs nor loads the model (:data:`EXTRACTION_CALLS` counts the batches run).
The scikit-learn side, and the run that writes ``metrics.json``, are in :mod:`hf_spam.baselines`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import torch
from datasets import Dataset, DatasetDict, Features, List, Value
from datasets.fingerprint import Hasher
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerBase

from .args import DataArguments, ModelArguments
from .classifier import pool
from .convert import config_from_transformers
from .data import (
    PaddingCollator,
    example_lengths,
    get_cache_dir,
    resolve_max_length,
    tokenize,
)
from .gpt2 import GPT2
from .hub import from_pretrained_offline_first, is_local
from .models import gpt2_config, tokenizer_for

logger = logging.getLogger(__name__)

FEATURES_VERSION = "features-v1"  # bump when extraction changes its output, so old cache files are not reused
EXTRACTION_CALLS = 0  # batches run through a backbone by extract_features in this process (cache hits: none)
FeaturePooling = Literal["cls", "first", "last", "mean"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth")  # identified by size and mtime (cheap)


@dataclass
class FeatureArguments:
    """Frozen features + scikit-learn: which features, which backbone, and the logistic regression."""

    method: Literal["embeddings", "tfidf", "bow"] = field(
        default="embeddings",
        metadata={"help": "embeddings: frozen backbone + LR; tfidf / bow: n-grams + LR (no neural network)"},
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
    implementation: Literal["hf_spam", "transformers"] = field(
        default="hf_spam", metadata={"help": "hf_spam: our GPT-2; transformers: AutoModel (no head)"}
    )
    weights: Literal["pretrained", "random"] = field(
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
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32", metadata={"help": "backbone dtype (features are stored as float32)"}
    )
    C_grid: list[float] = field(
        default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0],
        metadata={"help": "inverse regularisation strengths tried on validation (space separated)"},
    )
    max_iter: int = field(default=1000, metadata={"help": "LogisticRegression max_iter"})
    output_dir: str = field(default="outputs", metadata={"help": "run folders are created inside"})
    run_name: str | None = field(default=None, metadata={"help": "default: method/model-dataset-time"})
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


@dataclass
class Backbone:
    """A frozen model that turns token ids into hidden states ``(B, T, C)``, with its tokenizer.

    ``config`` is read at once (cheap); the weights are loaded on first use of :attr:`model`, so a run
    whose features are all cached never loads them.
    """

    args: FeatureArguments
    tokenizer: PreTrainedTokenizerBase
    config: Any  # our GPT2Config, or a transformers PretrainedConfig
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _model: nn.Module | None = field(default=None, repr=False)

    @property
    def ours(self) -> bool:
        """True for our GPT-2, False for a transformers ``AutoModel``."""
        return self.args.implementation == "hf_spam"

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states, i.e. of the pooled feature vectors."""
        return self.config.emb_dim if self.ours else self.config.hidden_size

    @property
    def context_length(self) -> int | None:
        """The longest input the model takes (None when its config does not say)."""
        if self.ours:
            return self.config.context_length
        return getattr(self.config, "max_position_embeddings", None) or getattr(
            self.config, "n_positions", None
        )

    def default_pooling(self) -> str:
        """``first`` ([CLS]) for encoders (model types with a masked-LM head, unless the checkpoint is a
        causal LM), else ``last`` (the last real token, which has read the whole text in a decoder)."""
        from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

        if self.ours:
            return "last"
        architectures = getattr(self.config, "architectures", None) or []
        causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
        return (
            "first" if self.config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not causal else "last"
        )

    def identity(self) -> Any:
        """What makes this backbone's features what they are, cheap to compute: implementation, dtype, and
        for random weights the seed + config + torch version; for pretrained weights the source's config
        files (by content) and weight files (by name, size and mtime -- hashing gigabytes each run would cost
        more than it saves; copying the folder only costs one extraction)."""
        common = [self.args.implementation, self.args.dtype, type(self.config).__name__]
        if self.args.weights == "random":
            config = asdict(self.config) if self.ours else self.config.to_diff_dict()
            config = {k: v for k, v in config.items() if k not in ("_name_or_path", "transformers_version")}
            return [*common, "random", self.args.seed, config, torch.__version__]
        return [*common, "pretrained", source_identity(self.args.model)]

    @property
    def model(self) -> nn.Module:
        """The model in eval mode on :attr:`device`, frozen; loaded on first use."""
        if self._model is None:
            self._model = _load_model(self.args, self.config).to(self.device).eval().requires_grad_(False)
            logger.info("loaded %s (%d parameters)", self.args.model, self.num_parameters())
        return self._model

    def num_parameters(self) -> int:
        """Parameter count; without loading the weights (a meta-device copy) when they are not loaded."""
        model = self._model
        if model is None:
            with torch.device("meta"):
                model = GPT2(self.config) if self.ours else AutoModel.from_config(self.config)
        return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden states ``(B, T, C)`` (final LayerNorm included for GPT-2)."""
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        if self.ours:
            return self.model.hidden_states(input_ids, attention_mask)
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def source_identity(source: str) -> Any:
    """A local folder/file: config files by content, weight files by name, size and mtime. A hub id: the
    same for its cached snapshot (whose folder name is the commit), else the id itself."""
    path = Path(os.fspath(source)).expanduser()
    if not is_local(path):
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(source, local_files_only=True))
        except Exception:  # not in the hub cache: the id is all we know
            return source
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    out = [path.name] if not is_local(source) else []
    for file in files:
        if file.suffix == ".json":
            out.append((file.name, Hasher.hash(file.read_bytes())))
        elif file.suffix in _WEIGHT_FILES:
            stat = file.stat()
            out.append((file.name, stat.st_size, stat.st_mtime_ns))
    return out


def _load_model(args: FeatureArguments, config: Any) -> nn.Module:
    dtype = DTYPES[args.dtype]
    if args.weights == "random":
        torch.manual_seed(args.seed)
        model = GPT2(config) if args.implementation == "hf_spam" else AutoModel.from_config(config)
        return model.to(dtype)
    if args.implementation == "hf_spam":
        return GPT2.from_pretrained(args.model, dtype=dtype)
    return from_pretrained_offline_first(
        AutoModel.from_pretrained, args.model, f"model '{args.model}'", config=config, dtype=dtype
    )


def load_backbone(args: FeatureArguments, device: torch.device | None = None) -> Backbone:
    """The backbone and tokenizer ``args`` name; reads configs now, the weights only when first needed."""
    tokenizer = tokenizer_for(ModelArguments(model=args.model, tokenizer=args.tokenizer))
    if args.implementation == "hf_spam":
        try:
            config: Any = gpt2_config(args.model, {})
        except ValueError:  # another GPT-2 repo on the hub: its own config
            if args.weights == "random":
                raise
            hub = from_pretrained_offline_first(
                AutoConfig.from_pretrained, args.model, f"config '{args.model}'"
            )
            config = config_from_transformers(hub)
    else:
        config = from_pretrained_offline_first(
            AutoConfig.from_pretrained, args.model, f"model config '{args.model}'"
        )
        config.use_cache = False  # no key/value cache for one forward pass
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Backbone(args, tokenizer, config, device)


def resolve_pooling(pooling: str | None, backbone: Backbone) -> str:
    """``pooling`` as :func:`hf_spam.classifier.pool` names it (``cls`` is ``first``), or the default."""
    pooling = pooling or backbone.default_pooling()
    return "first" if pooling == "cls" else pooling


def features_cache_file(
    tokens: Dataset, backbone: Backbone, pooling: str, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, str]:
    """The cache file (and the fingerprint of the result) for ``tokens``' features from ``backbone``."""
    fingerprint = Hasher.hash([FEATURES_VERSION, tokens._fingerprint, backbone.identity(), pooling])
    return get_cache_dir(cache_dir) / "features" / f"{fingerprint}.arrow", fingerprint


def _embed_batch(batch: dict, backbone: Backbone, pooling: str, collate: PaddingCollator) -> dict:
    """One ``Dataset.map`` batch: pad, run the frozen backbone, pool over real tokens."""
    global EXTRACTION_CALLS
    EXTRACTION_CALLS += 1
    examples = [
        {"input_ids": ids, "attention_mask": mask}
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
    ]
    inputs = collate(examples)
    with torch.inference_mode():
        hidden = backbone.hidden_states(inputs["input_ids"], inputs["attention_mask"])
        pooled = pool(hidden, inputs["attention_mask"], pooling)  # type: ignore[arg-type]
    return {"features": pooled.float().cpu().numpy()}


def extract_features(
    tokens: Dataset,
    backbone: Backbone,
    pooling: str | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Dataset, bool]:
    """Columns ``label`` and ``features`` (float32 vectors) for a tokenised split, and whether they came
    from the cache. Rows keep ``tokens``' order; batches are formed longest first to cut padding."""
    pooling = resolve_pooling(pooling, backbone)
    cache_file, fingerprint = features_cache_file(tokens, backbone, pooling, cache_dir)
    caching = datasets.is_caching_enabled()
    hit = caching and cache_file.is_file()
    if caching:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
    logger.info("features (%s pooling): %s %s", pooling, "loading cached" if hit else "writing", cache_file)
    order = np.argsort(-np.asarray(example_lengths(tokens)), kind="stable")
    features = Features(
        {"label": tokens.features["label"], "features": List(Value("float32"), length=backbone.hidden_size)}
    )
    collate = PaddingCollator(backbone.tokenizer, "longest", padding_side="right")
    out = tokens.select(order, keep_in_memory=True).map(
        _embed_batch,
        batched=True,
        batch_size=batch_size,
        fn_kwargs={"backbone": backbone, "pooling": pooling, "collate": collate},
        remove_columns=[c for c in tokens.column_names if c != "label"],
        features=features,
        cache_file_name=str(cache_file) if caching else None,
        new_fingerprint=fingerprint,
        desc=f"extracting features ({Path(backbone.args.model).name}, {pooling})",
    )
    return out.select(np.argsort(order), keep_in_memory=True), hit


def feature_matrix(features: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: the feature vectors as a float32 ``(n, dim)`` array, and the labels."""
    table = features.with_format("numpy")
    return np.asarray(table["features"][:], dtype=np.float32), np.asarray(table["label"][:])


def embedding_inputs(
    args: FeatureArguments, data_args: DataArguments, splits: DatasetDict
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any], Backbone]:
    """``(X, y)`` per split from the frozen backbone (cached), what was done, and the backbone."""
    if (data_args.padding, data_args.padding_side, data_args.group_by_length) != ("dynamic", "right", False):
        logger.warning(
            "--padding/--padding_side/--group_by_length are ignored: batches are sorted by length "
            "and padded on the right to their longest text (pooling reads the attention mask)"
        )
    backbone = load_backbone(args)
    max_length = resolve_max_length(backbone.tokenizer, data_args.max_length)
    if backbone.context_length and max_length > backbone.context_length:
        logger.warning(
            "max_length %d > the model's context %d: using the latter", max_length, backbone.context_length
        )
        max_length = backbone.context_length
    tokens = tokenize(splits, backbone.tokenizer, max_length=max_length, cache_dir=args.cache_dir)
    start = time.perf_counter()
    inputs, hits = {}, {}
    for name, part in tokens.items():
        features, hits[name] = extract_features(part, backbone, args.pooling, args.batch_size, args.cache_dir)
        inputs[name] = feature_matrix(features)
    info = {
        "extraction_seconds": time.perf_counter() - start,
        "cache_hit": all(hits.values()),
        "cache_hit_by_split": hits,
        "pooling": resolve_pooling(args.pooling, backbone),
        "max_length": max_length,
        "feature_dim": backbone.hidden_size,
    }
    return inputs, info, backbone
