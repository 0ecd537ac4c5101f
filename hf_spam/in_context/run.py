"""The in-context run behind ``recipes/in_context.py``: prompt a frozen decoder with labelled examples,
score every label word, calibrate, pick the operating point on validation, and write a run folder in the
layout of every recipe (:func:`hf_spam.run_folder.metrics_record`).

Nothing is trained. "Training" seconds are what a run spends before it can answer: choosing the
demonstrations (for kNN, embedding the training split). The
validation and test splits are scored (not the training split: a kNN prompt of a training text would show
the text itself).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from ..data import DataArguments, dataset_label, load_splits
from ..data.pairs import join_pairs
from ..evaluation import calibration_metrics, metrics_from_logits
from ..evaluation.operating_point import OperatingPointArguments, select_operating_point
from ..hub.access import is_local
from ..run_folder import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    claim_run_dir,
    metrics_record,
    sample_examples,
    write_args,
    write_examples,
    write_json,
    write_predictions,
)
from .arguments import InContextArguments, parse_label_words
from .calibration import calibrate, choose_calibration
from .classifier import InContextClassifier, Pool, load_embedder
from .decoder import context_length, load_decoder
from .demonstrations import POOLING, NearestNeighbours, balanced_random
from .prompts import Prompt, PromptBuilder
from .templates import load_template

logger = logging.getLogger(__name__)

EVALUATED = ("validation", "test")
Outputs = tuple[torch.Tensor, torch.Tensor]  # a split's logits (label log-probabilities) and labels


def run_in_context(args: InContextArguments, data_args: DataArguments) -> dict[str, Any]:
    """Classify the validation and test splits by in-context learning as ``args`` say; writes the run
    folder and returns the metrics.json dict."""
    run_dir = run_dir_for(args, data_args)
    claim_run_dir(run_dir, args.overwrite_output_dir, resumable=False)  # before any data or model loads
    splits, report = load_splits(data_args, args.seed)
    id2label = dict(enumerate(splits["train"].features["label"].names))
    words = label_words(args.label_words, id2label)  # a bad --label_words fails before the model loads
    lm, tokenizer = load_decoder(args.model, args.implementation, args.weights, args.tokenizer, args.seed,
                                 args.dtype)  # fmt: skip
    max_tokens = min(context_length(lm), data_args.max_length or 1 << 30)
    builder = PromptBuilder(load_template(args.template, tokenizer), tokenizer, words, max_tokens)
    texts = {name: split_texts(part) for name, part in splits.items()}
    start = time.perf_counter()
    classifier = build_classifier(
        args, lm, tokenizer, builder, id2label, texts["train"], splits["train"]["label"]
    )
    seconds = {"training": time.perf_counter() - start}
    start = time.perf_counter()
    labels = {name: torch.tensor(splits[name]["label"]) for name in EVALUATED}
    outputs, prompts, calibration = evaluate_splits(args, classifier, texts, labels)
    point_args = OperatingPointArguments(threshold_for=args.threshold_for, calibrate="temperature")
    point, point_record = select_operating_point(outputs, id2label, point_args)
    seconds["evaluation"] = time.perf_counter() - start
    details = run_details(args, classifier, calibration, prompts, len(texts["train"]), seconds["evaluation"])
    metrics = metrics_record(
        recipe="in_context", run_dir=run_dir, model=args.model, dataset=data_args.dataset,
        implementation=f"in_context:{args.implementation}", split_report=report, seconds=seconds,
        splits={n: metrics_from_logits(lg, y) | calibration_metrics(torch.softmax(lg, -1).numpy(), y.numpy())
                for n, (lg, y) in outputs.items()},
        examples=shown_examples(classifier), details=details, operating_point=point_record,
        best={"metric": "val_accuracy", "value": validation_accuracy(outputs), "step": None},
        parameters={"trainable": 0, "total": sum(p.numel() for p in lm.parameters())},
        device=next(lm.parameters()).device, unscored={"train": len(texts["train"])},
    )  # fmt: skip
    test_logits, test_labels = outputs["test"]
    write_predictions(run_dir / PREDICTIONS_FILE, torch.softmax(test_logits, -1), test_labels)
    point.save(run_dir)
    write_examples(run_dir, sample_examples(splits["test"], id2label, seed=args.seed))
    classifier.save(run_dir, decoder_record(args))
    write_args(run_dir, args, data_args)
    write_json(run_dir / METRICS_FILE, metrics)  # last: a run folder with metrics.json is complete
    logger.info("run folder: %s; test accuracy %.4f", run_dir, metrics["splits"]["test"]["accuracy"])
    return metrics


def evaluate_splits(
    args: InContextArguments, classifier: InContextClassifier, texts: dict[str, list[str]],
    labels: dict[str, torch.Tensor],
) -> tuple[dict[str, Outputs], dict[str, list[Prompt]], dict[str, Any]]:  # fmt: skip
    """Score the validation and test splits, calibrate as ``--calibrate`` decides on validation: the
    reported logits and labels per split, the prompts, and the calibration record."""
    scored = {name: score_split(classifier, texts[name], args.calibrate != "off") for name in EVALUATED}
    val = scored["validation"]
    classifier.calibrated, calibration = choose_calibration(
        args.calibrate, val["raw"], val["calibrated"], labels["validation"]
    )
    kind = "calibrated" if classifier.calibrated else "raw"
    outputs = {name: (scored[name][kind].float(), labels[name]) for name in EVALUATED}
    prompts = {name: scored[name]["prompts"] for name in EVALUATED}
    log_trimming(prompts, classifier.builder.max_tokens)
    return outputs, prompts, calibration


def run_dir_for(args: InContextArguments, data_args: DataArguments) -> Path:
    """``output_dir/run_name``; the default name is incontext-model-dataset-timestamp."""
    name = args.run_name or (
        f"incontext-{Path(args.model).name}-{dataset_label(data_args.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    return Path(args.output_dir) / name


def label_words(items: list[str] | None, id2label: dict[int, str]) -> list[str]:
    """The label word of each class in class order: ``--label_words`` (every class named), else the
    class names themselves."""
    given = parse_label_words(items)
    if not given:
        return list(id2label.values())
    names = list(id2label.values())
    unknown, missing = sorted(set(given) - set(names)), [n for n in names if n not in given]
    if unknown or missing:
        raise ValueError(
            f"--label_words must give a word for each class {names}: "
            + "; ".join(filter(None, [unknown and f"no class {unknown}", missing and f"missing {missing}"]))
        )
    return [given[name] for name in names]


def split_texts(part: Dataset) -> list[str]:
    """The texts a prompt shows: ``text``, and ``text_pair`` on the next line when the split has one."""
    if "text_pair" in part.column_names:
        return join_pairs(part["text"], part["text_pair"])
    return list(part["text"])


def build_classifier(
    args: InContextArguments, lm: torch.nn.Module, tokenizer: Any, builder: PromptBuilder,
    id2label: dict[int, str], train_texts: list[str], train_labels: list[int],
) -> InContextClassifier:  # fmt: skip
    """The classifier with its demonstrations: a balanced random set (seeded) or a kNN index of the
    training split; the shared prefix is run once (zero-shot: the instruction)."""
    pool = Pool(list(train_texts), [int(y) for y in train_labels], list(range(len(train_texts))))
    if args.demos == "random":
        fixed = balanced_random(pool.labels, args.k, args.seed) if args.k else []
        return InContextClassifier(
            lm, tokenizer, builder, id2label, pool, fixed=fixed, batch_size=args.batch_size
        )
    embedder = load_embedder(args.embedding_model, lm, tokenizer, builder.max_tokens)
    vectors = embedder(pool.texts, args.batch_size)
    neighbours = NearestNeighbours(embedder, vectors, args.k, args.batch_size)
    return InContextClassifier(lm, tokenizer, builder, id2label, pool, neighbours=neighbours,
                               batch_size=args.batch_size)  # fmt: skip


def score_split(classifier: InContextClassifier, texts: list[str], with_prior: bool) -> dict[str, Any]:
    """A split's raw label log-probabilities, the calibrated ones (``with_prior``; else None), its prompts."""
    raw, prior, prompts = classifier.read(texts, classifier.choose(texts), with_prior)
    return {
        "raw": raw,
        "calibrated": calibrate(raw, prior) if prior is not None else None,
        "prompts": prompts,
    }


def shown_examples(classifier: InContextClassifier) -> int:
    """The labelled examples the run can show: its fixed demonstrations, or (kNN) the whole pool."""
    return len(classifier.fixed) if classifier.fixed is not None else len(classifier.pool.texts)


def log_trimming(prompts: dict[str, list[Prompt]], max_tokens: int) -> None:
    """A warning with the counts when prompts lost demonstrations or text to fit ``max_tokens``."""
    every = [p for ps in prompts.values() for p in ps]
    trimmed = [p for p in every if p.dropped or p.truncated]
    if trimmed:
        logger.warning(
            "%d of %d prompts did not fit %d tokens: %d demonstrations dropped, %d texts cut",
            len(trimmed), len(every), max_tokens, sum(p.dropped for p in trimmed),
            sum(p.truncated for p in trimmed),
        )  # fmt: skip


def validation_accuracy(outputs: dict[str, Outputs]) -> float:
    """Validation accuracy (argmax) of the reported logits."""
    logits, labels = outputs["validation"]
    return float((logits.argmax(-1) == labels).double().mean())


def decoder_record(args: InContextArguments) -> dict[str, Any]:
    """What rebuilds the decoder (a local model or tokenizer by its absolute path) and how demonstrations
    were chosen."""

    def where(source: str | None) -> str | None:
        return str(Path(source).expanduser().resolve()) if source and is_local(source) else source

    return {
        "decoder": {"model": where(args.model), "implementation": args.implementation,
                    "weights": args.weights, "tokenizer": where(args.tokenizer), "seed": args.seed,
                    "dtype": args.dtype},
        "demos": args.demos, "k": args.k, "embedding_model": where(args.embedding_model),
    }  # fmt: skip


def run_details(
    args: InContextArguments, classifier: InContextClassifier, calibration: dict[str, Any],
    prompts: dict[str, list[Prompt]], train_rows: int, eval_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """metrics.json ``training.details``: demonstrations, prompt sizes, trimming, calibration, speed."""
    every = [p for ps in prompts.values() for p in ps]
    lengths = np.array([len(p) for p in every])
    prior = classifier.prior.tolist() if classifier.prior is not None else None
    return {
        "demos": args.demos, "k": args.k, "labelled_examples": train_rows,
        "demonstration_ids": list(classifier.fixed) if classifier.fixed is not None else None,
        "embedding_model": (args.embedding_model or args.model) if args.demos == "knn" else None,
        "embedding_pooling": POOLING if args.demos == "knn" else None,
        "template_kind": classifier.builder.template.kind,
        "label_words": dict(zip(classifier.id2label.values(), classifier.words, strict=True)),
        "answer_tokens": [len(a) for a in classifier.builder.answers],
        "calibration": calibration | {"content_free_prior": prior},
        "shared_prefix_tokens": len(every[0].prefix) if every else 0,
        "prompt_tokens": {"mean": float(lengths.mean()), "max": int(lengths.max())} if len(every) else None,
        "max_tokens": classifier.builder.max_tokens,
        "prompts_trimmed": sum(p.dropped > 0 or p.truncated for p in every),
        "demonstrations_dropped": sum(p.dropped for p in every),
        "texts_truncated": sum(p.truncated for p in every),
        "scoring": {"forwards": classifier.stats.forwards, "tokens": classifier.stats.tokens,
                    "prefixes_cached": classifier.stats.prefixes},
        "seconds_per_query": eval_seconds / max(len(every), 1),
    }  # fmt: skip
