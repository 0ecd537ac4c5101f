"""One fine-tuning run, end to end: data -> model -> cache -> accelerate loop -> evaluation -> run folder.

Every fine-tuning recipe (GPT-2, BERT, any transformers classifier) calls :func:`run_classification`;
they differ only in their argument defaults. Each phase is a function of its own, in the order it runs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration, PartialState
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from ..data import DataArguments, dataset_label, pair_record
from ..evaluation import OperatingPointArguments, calibration_metrics, metrics_from_logits
from ..evaluation.operating_point import OperatingPoint, balanced_class_weights, select_operating_point
from ..hub import check_push, push_run
from ..models import ModelArguments, build_classifier, parameter_counts, set_trainable, tokenizer_for
from ..models.adapters import (
    DEFAULT_LEARNING_RATES,
    AdapterArguments,
    build_adapter_classifier,
    check_adapter_arguments,
    save_adapter_run,
)
from ..models.gradient_checkpointing import enable_gradient_checkpointing
from ..models.trainable import PEFT_METHODS
from ..run_folder import (
    CURVES_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    claim_run_dir,
    metrics_record,
    write_args,
    write_examples,
    write_json,
    write_predictions,
)
from .arguments import TrainArguments
from .checkpoints import find_checkpoint
from .inputs import (
    PreparedData,
    in_dataset_order,
    loader_order,
    make_loaders,
    passes_per_epoch,
    prepare_data,
)
from .plots import plot_curves
from .prefix_cache import PrefixCache, build_prefix_cache
from .processes import (
    check_launch,
    check_shared_folder,
    has_accelerator,
    on_main_process,
    warn_if_cpu_underused,
)
from .sharding import configure_fsdp, fsdp_checkpoints_activations, gather_model, is_sharded, meta_copy
from .trainer import Trainer, TrainState, predict_logits

logger = logging.getLogger(__name__)
DEFAULT_LEARNING_RATE = 5e-5  # the book's, for every --trainable that is not an adapter method


@dataclass
class RunArguments:
    """The argument groups of one fine-tuning run."""

    model: ModelArguments
    data: DataArguments
    train: TrainArguments
    adapter: AdapterArguments = field(default_factory=AdapterArguments)
    point: OperatingPointArguments = field(default_factory=OperatingPointArguments)

    def __post_init__(self) -> None:
        check_adapter_arguments(self.model, self.adapter)
        if self.train.learning_rate is None:  # the method's own default, recorded in args.json
            self.train.learning_rate = DEFAULT_LEARNING_RATES.get(self.model.trainable, DEFAULT_LEARNING_RATE)
            logger.info("--learning_rate %g (the default for --trainable %s)", self.train.learning_rate,
                        self.model.trainable)  # fmt: skip

    @property
    def uses_adapter(self) -> bool:
        """True when peft's adapter trains (``--trainable`` is one of the PEFT methods)."""
        return self.model.trainable in PEFT_METHODS

    def groups(self) -> list[Any]:
        """The groups args.json records (the adapter's only for an adapter run)."""
        extra = [self.adapter] if self.uses_adapter else []
        return [self.model, self.data, self.train, self.point, *extra]


@dataclass
class Evaluation:
    """Every split's logits and labels in the split's order, with the seconds all evaluations took."""

    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    seconds: float


def run_classification(
    model_args: ModelArguments,
    data_args: DataArguments,
    train_args: TrainArguments,
    adapter_args: AdapterArguments | None = None,
    point_args: OperatingPointArguments | None = None,
) -> dict[str, Any]:
    """Fine-tune a classifier as the arguments say; writes the run folder, returns the metrics.json dict."""
    check_launch()  # FSDP or DeepSpeed where they cannot run: one line, before anything loads
    args = RunArguments(model_args, data_args, train_args, adapter_args or AdapterArguments(),
                        point_args or OperatingPointArguments())  # fmt: skip
    hub_repo, run_dir = claim_outputs(args)  # fails now, not after training
    accelerator = make_accelerator(args.train, run_dir)
    tokenizer = tokenizer_for(args.model)
    with accelerator.main_process_first():
        data = prepare_data(args.data, tokenizer, args.train.seed)
    model, adapter_record = build_model(args, data, tokenizer)
    apply_gradient_checkpointing(args.train, model, accelerator)
    counts = parameter_counts(model)
    cache, cache_record = build_prefix_cache(
        model, data.token_ids(), accelerator, args.train.cache_frozen, tokenizer.pad_token_id,
        args.data.padding_side, segments="token_type_ids" in data.tokens["train"].column_names,
    )  # fmt: skip
    fsdp_record = configure_fsdp(accelerator, model)
    skeleton = meta_copy(model) if fsdp_record else None  # FSDP: the plain model the trained shards fill
    loaders = make_loaders(data, tokenizer, args.data, args.train, cache, accelerator.num_processes)
    if accelerator.is_main_process:
        write_args(run_dir, *args.groups())
    accelerator.init_trackers(
        run_dir.name, config={"lr": args.train.learning_rate, "model": args.model.model}
    )
    trainer, class_weights = make_trainer(args, model, loaders, accelerator, data, run_dir, cache)
    state = trainer.train()
    evaluation = evaluate_splits(trainer, state, data, loaders, cache)
    point, point_record = select_operating_point(evaluation.outputs, data.id2label, args.point)
    metrics = record_metrics(args, run_dir, data, state, evaluation, accelerator, point_record, counts=counts,
                             cache_record=cache_record, class_weights=class_weights,
                             fsdp_record=fsdp_record, tokenizer=tokenizer)  # fmt: skip
    model = final_model(trainer, skeleton) if args.train.save_model else None  # FSDP: every process gathers
    if accelerator.is_main_process:
        save_run(args, run_dir, metrics, state, evaluation, point, data, model, tokenizer, adapter_record)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    logger.info("run folder: %s; test accuracy %.4f", run_dir, metrics["splits"]["test"]["accuracy"])
    if hub_repo and accelerator.is_main_process:
        push_run(run_dir, hub_repo, private=args.train.hub_private, revision=args.train.hub_revision)
    return metrics


def claim_outputs(args: RunArguments) -> tuple[str | None, Path]:
    """Before anything loads: the hub pre-flight (with ``--push_to_hub``; the full repo id) and the run
    folder, claimed by the main process for every process (an existing folder is an error unless the run
    resumes or overwrites it; a checkpoint to resume from must exist)."""
    process = PartialState(cpu=not has_accelerator())  # then `accelerate launch --multi_gpu` runs on CPUs
    train = args.train
    hub_repo = None
    if train.push_to_hub:
        hub_repo = on_main_process(
            process,
            lambda: check_push(train.hub_model_id, private=train.hub_private, revision=train.hub_revision),
        )
    run_dir = run_dir_for(train, args.model, args.data)
    on_main_process(
        process, lambda: claim_run_dir(run_dir, train.overwrite_output_dir, train.resume_from_checkpoint)
    )
    check_shared_folder(process, run_dir.parent)  # several machines: all must see the run folder
    if train.resume_from_checkpoint:
        find_checkpoint(train.resume_from_checkpoint, run_dir)  # fail before loading anything
    return hub_repo, run_dir


def run_dir_for(args: TrainArguments, model_args: ModelArguments, data_args: DataArguments) -> Path:
    """``output_dir/run_name``; the default name is model-dataset-timestamp (the same on every process)."""
    if args.run_name:
        return Path(args.output_dir) / args.run_name
    if args.resume_from_checkpoint and args.resume_from_checkpoint != "latest":
        return Path(args.resume_from_checkpoint).resolve().parents[1]  # run/checkpoints/step_N
    model = Path(model_args.model).name or model_args.model
    dataset = dataset_label(data_args.dataset)
    name = [f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"]
    return Path(args.output_dir) / broadcast_object_list(name)[0]


def make_accelerator(train_args: TrainArguments, run_dir: Path) -> Accelerator:
    """The run's ``Accelerator`` (trackers logging into the run folder), the seed set on every process."""
    accelerator = Accelerator(
        cpu=not has_accelerator(),
        gradient_accumulation_steps=train_args.gradient_accumulation_steps,
        log_with=None if train_args.report_to == "none" else train_args.report_to.split(","),
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    accelerator.wait_for_everyone()  # the main process may have deleted an --overwrite_output_dir folder
    warn_if_cpu_underused(accelerator)
    set_seed(train_args.seed)
    return accelerator


def build_model(
    args: RunArguments, data: PreparedData, tokenizer: PreTrainedTokenizerBase
) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """The classifier with its trainable policy applied; for an adapter also the record that rebuilds its
    base."""
    if args.uses_adapter:
        model, record = build_adapter_classifier(
            args.model, data.id2label, tokenizer, args.adapter, args.train.seed
        )
    else:
        model, record = build_classifier(args.model, data.id2label, tokenizer), None
    set_trainable(model, args.model.trainable)
    return model, record


def apply_gradient_checkpointing(
    train_args: TrainArguments, model: torch.nn.Module, accelerator: Accelerator
) -> None:
    """``--gradient_checkpointing``: the model checkpoints its blocks, unless accelerate's FSDP activation
    checkpointing wraps them already (then the model's own would recompute them twice)."""
    if not train_args.gradient_checkpointing:
        return
    if fsdp_checkpoints_activations(accelerator):
        logger.info("--gradient_checkpointing: accelerate's FSDP activation checkpointing wraps each block")
        return
    enable_gradient_checkpointing(model)


def final_model(trainer: Trainer, skeleton: torch.nn.Module | None) -> torch.nn.Module | None:
    """The trained model to save, on the main process: the unwrapped model, or under FSDP its full state
    dict gathered into ``skeleton`` (every process must call this; the others get None)."""
    model, accelerator = trainer.model, trainer.accelerator
    if not is_sharded(model):
        model = accelerator.unwrap_model(model)
    return gather_model(model, skeleton, accelerator.is_main_process)


def run_identity(model_args: ModelArguments, data_args: DataArguments, data: PreparedData) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed by this run: the model arguments, the data arguments
    (the source path aside: the fingerprint of the tokenised splits stands for the data itself)."""
    identity = {f"model.{k}": v for k, v in asdict(model_args).items()}
    identity |= {f"data.{k}": v for k, v in asdict(data_args).items() if k != "data_source"}
    identity |= {f"data.fingerprint.{name}": ds._fingerprint for name, ds in data.tokens.items()}
    return identity


def make_trainer(
    args: RunArguments,
    model: torch.nn.Module,
    loaders: dict[str, DataLoader],
    accelerator: Accelerator,
    data: PreparedData,
    run_dir: Path,
    cache: PrefixCache | None,
) -> tuple[Trainer, list[float] | None]:
    """The :class:`Trainer` of this run, and the class weights of its loss (``--class_weights``)."""
    identity, class_weights = run_identity(args.model, args.data, data), None
    if args.point.class_weights == "balanced":
        class_weights = balanced_class_weights(data.tokens["train"]["label"], len(data.id2label))
        identity["train.class_weights"] = class_weights
        logger.info(
            "--class_weights balanced: %s", dict(zip(data.id2label.values(), class_weights, strict=True))
        )
    trainer = Trainer(
        model, loaders["train_shuffled"], loaders["validation"], accelerator, args.train, run_dir,
        identity=identity, class_weights=class_weights, prefix=cache.prefix if cache else None,
    )  # fmt: skip
    return trainer, class_weights


def evaluate_splits(
    trainer: Trainer,
    state: TrainState,
    data: PreparedData,
    loaders: dict[str, DataLoader],
    cache: PrefixCache | None,
) -> Evaluation:
    """Every split's logits with the best weights, in the split's order; the validation split's come from
    the training loop when its latest evaluation was the best one (no second pass). Detaches the cache:
    the model is the full model again afterwards (saved, pushed, used by the caller)."""
    start, accelerator = time.perf_counter(), trainer.accelerator
    prefix = cache.prefix if cache else None
    outputs = {}
    for name in data.tokens:
        last = trainer.last_eval
        if name == "validation" and last is not None and last[0] == state.best_step:
            found = last[1:]
        else:
            found = predict_logits(trainer.model, accelerator.prepare(loaders[name]), accelerator, prefix)
        outputs[name] = in_dataset_order(found, loader_order(loaders[name]))
    if prefix is not None:
        prefix.detach()
    return Evaluation(outputs, state.eval_seconds + time.perf_counter() - start)


def record_metrics(
    args: RunArguments,
    run_dir: Path,
    data: PreparedData,
    state: TrainState,
    evaluation: Evaluation,
    accelerator: Accelerator,
    point_record: dict[str, Any],
    *,
    counts: dict[str, int],
    cache_record: dict[str, Any],
    class_weights: list[float] | None,
    fsdp_record: dict[str, Any] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> dict[str, Any]:
    """The metrics.json record of this run (:func:`hf_spam.run_folder.metrics_record`)."""
    splits = {
        name: metrics_from_logits(logits, labels) | calibration_metrics(torch.softmax(logits, -1), labels)
        for name, (logits, labels) in evaluation.outputs.items()
    }
    details = {
        "optimizer_steps": state.global_step, "epochs_completed": state.epoch,
        "epoch_training_seconds": state.epoch_seconds, "stopped_early": state.stopped_early,
        "class_weights": class_weights, "frozen_prefix_cache": cache_record,
        "gradient_checkpointing": args.train.gradient_checkpointing, "fsdp": fsdp_record,
        "text_pairs": pair_record(args.data.text_pair_column, tokenizer),
        "passes_per_epoch": passes_per_epoch(len(data.tokens["train"]), args.train,
                                             accelerator.num_processes),
    }  # fmt: skip
    seconds = {"training": state.train_seconds, "evaluation": evaluation.seconds,
               "cache_building": cache_record["seconds"]}  # fmt: skip
    best = {
        "metric": f"val_{args.train.metric_for_best.removeprefix('val_')}",
        "value": state.best_metric,
        "step": state.best_step,
    }
    return metrics_record(
        recipe="fine_tuning", run_dir=run_dir, model=args.model.model,
        implementation=args.model.implementation, dataset=args.data.dataset, splits=splits,
        split_report=data.split_report, seconds=seconds, examples=state.examples_seen, best=best,
        details=details, operating_point=point_record, parameters=counts, device=accelerator.device,
        num_processes=accelerator.num_processes, mixed_precision=accelerator.mixed_precision,
    )  # fmt: skip


def save_run(
    args: RunArguments,
    run_dir: Path,
    metrics: dict[str, Any],
    state: TrainState,
    evaluation: Evaluation,
    point: OperatingPoint,
    data: PreparedData,
    model: torch.nn.Module | None,
    tokenizer: PreTrainedTokenizerBase,
    adapter_record: dict[str, Any] | None,
) -> None:
    """Write the run folder (main process): predictions, history, operating point, examples, curves, the
    model (unless ``model`` is None; an adapter, merged too with ``--merge``) and, last, ``metrics.json``
    with the seconds saving took."""
    start = time.perf_counter()
    test_logits, test_labels = evaluation.outputs["test"]
    write_predictions(run_dir / PREDICTIONS_FILE, torch.softmax(test_logits, -1), test_labels)
    write_json(run_dir / HISTORY_FILE, state.history)
    point.save(run_dir)
    write_examples(run_dir, data.examples)
    plot_curves(state.history, run_dir / CURVES_FILE, title=f"{args.model.model} on {args.data.dataset}")
    if model is not None and adapter_record is not None:
        megabytes = save_adapter_run(model, tokenizer, run_dir, adapter_record, merge=args.adapter.merge)
        metrics["training"]["details"]["adapter"] = {"method": args.model.trainable, "megabytes": megabytes}
    elif model is not None:
        model.save_pretrained(run_dir)
        tokenizer.save_pretrained(run_dir)
    metrics["seconds"]["saving"] = time.perf_counter() - start
    write_json(run_dir / METRICS_FILE, metrics)  # last: a run folder with metrics.json is complete


def summary_line(metrics: dict[str, Any]) -> str:
    """One JSON line for a recipe to print: the run, accuracy per split and training seconds."""
    accuracy = {split: round(m["accuracy"], 4) for split, m in metrics["splits"].items()}
    return json.dumps(
        {"run": metrics["run"], "accuracy": accuracy, "seconds": round(metrics["seconds"]["training"], 1)}
    )
