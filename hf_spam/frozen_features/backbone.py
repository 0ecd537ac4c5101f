"""The frozen backbone of the frozen-features recipe: our GPT-2 or any transformers ``AutoModel`` (no head).

Its config is read at once; its weights load only when features must be computed, so a run whose features
are all cached never loads them. :meth:`Backbone.identity` says what makes its features what they are (for
the feature cache's fingerprint).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets.fingerprint import Hasher
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerBase

from ..hub.access import from_pretrained_offline_first, is_local
from ..models.arguments import ModelArguments
from ..models.build import gpt2_config, tokenizer_for
from ..models.gpt2 import GPT2
from ..models.gpt2.weights import config_from_transformers
from .arguments import FeatureArguments

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth")  # identified by size and mtime (cheap)


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

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Last-layer hidden states ``(B, T, C)`` (final LayerNorm included for GPT-2); ``token_type_ids``:
        the segment ids of sentence pairs (encoders)."""
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        if self.ours:
            return self.model.hidden_states(input_ids, attention_mask)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids.to(self.device)}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state


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
    """``pooling`` as :func:`~hf_spam.models.remote.modeling_hf_spam.pool` names it (``cls`` is
    ``first``), or the backbone's default."""
    pooling = pooling or backbone.default_pooling()
    return "first" if pooling == "cls" else pooling
