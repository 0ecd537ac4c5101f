"""An in-context classifier: a frozen decoder, a prompt template, label words, demonstrations and (maybe)
contextual calibration -- the object a run scores its splits with, saves, and the Predictor loads again.

``InContextClassifier.logits(texts)`` -> ``(n, num_labels)`` label log-probabilities (calibrated when the
run chose to): :class:`hf_spam.serving.Predictor` applies the run's temperature and threshold to them as
to any classifier's logits. The run folder keeps what rebuilds it: ``in_context.json`` (the decoder,
template, label words, demonstrations with their training-split ids, calibration; for kNN the training
texts) and, for kNN, ``in_context_index.safetensors`` (their embeddings). The decoder's weights are not
copied: the run names the model (a local folder by its absolute path, or a hub id).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..data.pairs import join_pairs
from ..run_folder import IN_CONTEXT_FILE, IN_CONTEXT_INDEX_FILE
from .calibration import CONTENT_FREE, calibrate, content_free_prior, content_free_prior_rows, label_log_probs
from .decoder import load_decoder
from .demonstrations import POOLING, Embedder, NearestNeighbours
from .prompts import Prompt, PromptBuilder
from .scoring import KeyValues, ScoringStats, score_prompts
from .templates import Template

logger = logging.getLogger(__name__)

IN_CONTEXT_VERSION = 1


@dataclass
class Pool:
    """The labelled texts demonstrations come from: the training split (``ids``: its row numbers)."""

    texts: list[str]
    labels: list[int]
    ids: list[int]


class BaseModelEmbedder(nn.Module):
    """A causal LM's own base model (no LM head) as an embedding model, its cache off."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.base = lm.base_model
        self.config = lm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """The base model's outputs (``last_hidden_state``)."""
        extra = {"use_cache": False} if "use_cache" in inspect.signature(self.base.forward).parameters else {}
        return self.base(input_ids=input_ids, attention_mask=attention_mask, **extra)


def load_embedder(
    embedding_model: str | None, lm: nn.Module, tokenizer: PreTrainedTokenizerBase, max_tokens: int
) -> Embedder:
    """The kNN embedder: ``embedding_model`` (a transformers ``AutoModel``), else the decoder itself."""
    if embedding_model is None:
        return Embedder(BaseModelEmbedder(lm), tokenizer, max_tokens)
    from ..frozen_features.arguments import FeatureArguments
    from ..frozen_features.backbone import load_backbone

    device = next(lm.parameters()).device
    backbone = load_backbone(FeatureArguments(model=embedding_model, implementation="transformers"), device)
    return Embedder(backbone.model, backbone.tokenizer)


class InContextClassifier:
    """Scores texts by in-context learning (see the module docstring).

    ``fixed``: the pool rows shown to every query (random demonstrations), or ``None`` with
    ``neighbours`` (each query's nearest pool rows). ``prior``: the content-free label probabilities of the
    fixed prompt, once computed. ``calibrated``: whether :meth:`logits` divides them out.
    """

    def __init__(
        self,
        lm: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        builder: PromptBuilder,
        id2label: dict[int, str],
        pool: Pool,
        fixed: list[int] | None = None,
        neighbours: NearestNeighbours | None = None,
        batch_size: int = 16,
    ) -> None:
        if (fixed is None) == (neighbours is None):
            raise ValueError("give exactly one of fixed demonstrations and neighbours")
        self.lm, self.tokenizer, self.builder, self.id2label = lm, tokenizer, builder, id2label
        self.pool, self.fixed, self.neighbours, self.batch_size = pool, fixed, neighbours, batch_size
        self.calibrated = False
        self.prior: torch.Tensor | None = None
        self.stats = ScoringStats()
        self.prefixes: dict[tuple[int, ...], KeyValues] = {}  # key/values of the shared prefixes run so far
        self._last: tuple[list[str], list[Prompt]] | None = None

    @property
    def words(self) -> list[str]:
        """The label word of each class, in class order."""
        return self.builder.words

    def choose(self, texts: list[str]) -> list[list[int]]:
        """Per text, the pool rows it is shown, in prompt order."""
        if self.fixed is not None:
            return [self.fixed] * len(texts)
        assert self.neighbours is not None
        return self.neighbours(texts)

    def prompts(self, texts: list[str], chosen: list[list[int]] | None = None) -> list[Prompt]:
        """The prompt of each text (``chosen``: its demonstrations, from :meth:`choose`)."""
        chosen = self.choose(texts) if chosen is None else chosen
        return [
            self.builder.prompt(
                [(self.pool.texts[j], self.words[self.pool.labels[j]]) for j in rows],
                text,
                self.fixed is not None,
            )
            for text, rows in zip(texts, chosen, strict=True)
        ]

    def score(self, prompts: list[Prompt], reuse_prefix: bool = True) -> torch.Tensor:
        """``(n, C)`` summed log-probabilities of each label word after each prompt."""
        return score_prompts(
            self.lm,
            prompts,
            self.builder.answers,
            self.batch_size,
            reuse_prefix=reuse_prefix,
            stats=self.stats,
            prefixes=self.prefixes,
        )

    def content_free(self) -> torch.Tensor:
        """``p_cf`` ``(C,)`` of the fixed demonstrations' prompt (computed once, kept in :attr:`prior`)."""
        assert self.fixed is not None
        if self.prior is None:
            prompts = self.prompts(list(CONTENT_FREE), [self.fixed] * len(CONTENT_FREE))
            self.prior = content_free_prior(self.score(prompts))
        return self.prior

    def read(
        self, texts: list[str], chosen: list[list[int]], with_prior: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[Prompt]]:
        """Raw label log-probabilities ``(n, C)``, the content-free prior (``with_prior``; ``(C,)`` for fixed
        demonstrations, else ``(n, C)``, one per query's demonstrations) and the prompts.

        Demonstrations chosen per query (kNN): each query's prompt and its content-free prompts share that
        query's demonstrations, so these are their prefix, run once for the four of them (and not kept)."""
        if self.fixed is not None or not with_prior:
            prompts = self.prompts(texts, chosen)
            raw = label_log_probs(self.score(prompts))
            return raw, (self.content_free() if with_prior else None), prompts
        group = 1 + len(CONTENT_FREE)
        prompts = []
        for text, rows in zip(texts, chosen, strict=True):
            shown = [(self.pool.texts[j], self.words[self.pool.labels[j]]) for j in rows]
            prompts += [self.builder.prompt(shown, query, fixed=True) for query in (text, *CONTENT_FREE)]
        scores = score_prompts(self.lm, prompts, self.builder.answers, self.batch_size, stats=self.stats)
        scores = scores.view(len(texts), group, -1)
        return label_log_probs(scores[:, 0]), content_free_prior_rows(scores[:, 1:]), prompts[::group]

    def logits(self, texts: list[str], text_pairs: list[str] | None = None) -> torch.Tensor:
        """``(n, C)`` label log-probabilities, calibrated when :attr:`calibrated`; a pair's two texts are
        shown one per line, as in its run."""
        texts = join_pairs(texts, text_pairs)
        raw, prior, prompts = self.read(texts, self.choose(texts), self.calibrated)
        self._last = (list(texts), prompts)
        return calibrate(raw, prior) if prior is not None else raw

    def describe(self, texts: list[str], text_pairs: list[str] | None = None) -> list[dict[str, Any]]:
        """How each text was read: prompt tokens, demonstrations shown and dropped, text cut or not."""
        texts = join_pairs(texts, text_pairs)
        prompts = self._last[1] if self._last and self._last[0] == list(texts) else self.prompts(texts)
        return [
            {"long_text": "in_context", "tokens": len(p), "chunks": 1, "truncated": p.truncated,
             "demonstrations": p.demonstrations, "demonstrations_dropped": p.dropped}
            for p in prompts
        ]  # fmt: skip

    # -- the run folder -------------------------------------------------------------------------------
    def save(self, run_dir: str | os.PathLike, record: dict[str, Any]) -> None:
        """Write :data:`IN_CONTEXT_FILE` (``record``: the decoder and what the run chose, merged in) and,
        for kNN, :data:`IN_CONTEXT_INDEX_FILE`."""
        run_dir = Path(run_dir)
        data = {
            "version": IN_CONTEXT_VERSION,
            **record,
            "id2label": {str(k): v for k, v in self.id2label.items()},
            "template": self.builder.template.to_dict(),
            "label_words": dict(zip(self.id2label.values(), self.words, strict=True)),
            "answer_tokens": dict(zip(self.id2label.values(), self.builder.answers, strict=True)),
            "max_tokens": self.builder.max_tokens,
            "batch_size": self.batch_size,
            "calibrated": self.calibrated,
            "content_free": list(CONTENT_FREE),
            "prior": self.prior.tolist() if self.prior is not None else None,
        }
        shown = [(self.pool.texts[j], self.words[self.pool.labels[j]]) for j in self.fixed or []]
        data["prompt"] = self.builder.render(shown, "{text}")  # kNN: the demonstrations vary, none shown
        if self.fixed is not None:
            data["demonstrations"] = [
                {
                    "id": self.pool.ids[j],
                    "text": self.pool.texts[j],
                    "label": self.id2label[self.pool.labels[j]],
                }
                for j in self.fixed
            ]
        else:
            assert self.neighbours is not None
            data["pool"] = {"ids": self.pool.ids, "texts": self.pool.texts, "labels": self.pool.labels}
            data["knn"] = {"k": self.neighbours.k, "pooling": POOLING, "index_file": IN_CONTEXT_INDEX_FILE,
                           "embedding_model": record.get("embedding_model")}  # fmt: skip
            save_file(
                {"embeddings": self.neighbours.pool_vectors.contiguous()},
                str(run_dir / IN_CONTEXT_INDEX_FILE),
            )
        (run_dir / IN_CONTEXT_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike, device: str | torch.device | None = None
    ) -> InContextClassifier:
        """The classifier a run saved (its decoder loaded again from where the run names it)."""
        run_dir = Path(run_dir)
        data = json.loads((run_dir / IN_CONTEXT_FILE).read_text())
        decoder = data["decoder"]
        lm, tokenizer = load_decoder(
            decoder["model"], decoder["implementation"], decoder["weights"], decoder["tokenizer"],
            decoder["seed"], decoder["dtype"], torch.device(device) if device else None,
        )  # fmt: skip
        id2label = {int(k): v for k, v in data["id2label"].items()}
        words = [data["label_words"][name] for name in id2label.values()]
        builder = PromptBuilder(Template(**data["template"]), tokenizer, words, data["max_tokens"])
        label2id = {v: k for k, v in id2label.items()}
        if "demonstrations" in data:
            shown = data["demonstrations"]
            pool = Pool(
                [d["text"] for d in shown], [label2id[d["label"]] for d in shown], [d["id"] for d in shown]
            )
            model = cls(lm, tokenizer, builder, id2label, pool, fixed=list(range(len(shown))),
                        batch_size=data["batch_size"])  # fmt: skip
        else:
            pool = Pool(data["pool"]["texts"], data["pool"]["labels"], data["pool"]["ids"])
            vectors = load_file(str(run_dir / data["knn"]["index_file"]))["embeddings"]
            embedder = load_embedder(data["knn"].get("embedding_model"), lm, tokenizer, builder.max_tokens)
            neighbours = NearestNeighbours(embedder, vectors, data["knn"]["k"])
            model = cls(
                lm, tokenizer, builder, id2label, pool, neighbours=neighbours, batch_size=data["batch_size"]
            )
        model.calibrated = data["calibrated"]
        model.prior = torch.tensor(data["prior"], dtype=torch.float64) if data.get("prior") else None
        return model


def load_in_context(
    run_dir: str | os.PathLike, device: str | torch.device | None = None
) -> InContextClassifier | None:
    """The run's in-context classifier, or ``None`` when ``run_dir`` is no in-context run."""
    if not (Path(run_dir) / IN_CONTEXT_FILE).is_file():
        return None
    return InContextClassifier.load(run_dir, device)
