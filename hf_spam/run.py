"""One fine-tuning run, end to end: data -> model -> accelerate loop -> metrics and saved model.

Every fine-tuning recipe (GPT-2, BERT, any transformers classifier) calls :func:`run_classification`;
they differ only in their argument defaults.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from accelerate import Accelerator, DataLoaderConfiguration, PartialState
from accelerate.utils import (
    ProjectConfiguration,
    broadcast_object_list,
    is_mps_available,
    is_xpu_available,
    set_seed,
)
from datasets import DatasetDict
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from .app_data import sample_examples, write_examples
from .args import DataArguments, ModelArguments, TrainArguments
from .checkpoints import find_checkpoint
from .classifier import parameter_counts, set_trainable
from .data import dataset_label, load_splits, longest_length, make_dataloader, tokenize
from .data.cache import get_cache_dir
from .hub import check_push as check_hub
from .hub import push_run
from .lora import LoraArguments, build_lora_classifier, check_lora_arguments, merge_lora_run, save_lora_run
from .models import build_classifier, tokenizer_for
from .operating_point import (
    OperatingPointArguments,
    balanced_class_weights,
    calibration_metrics,
    select_operating_point,
)
from .outputs import (
    PREDICTIONS_FILE,
    claim_run_dir,
    metrics_record,
    plot_curves,
    write_args,
    write_json,
    write_predictions,
)
from .prefix_cache import (
    CachedCollator,
    FrozenPrefix,
    PrefixStore,
    ensure_cached,
    estimated_bytes,
    plan_cache,
    prefix_fingerprint,
)
from .train import Trainer, metrics_from_logits, predict_logits

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class PreparedData:
    """Tokenised splits, label names, and the length every example is padded to (if fixed)."""

    tokens: DatasetDict
    id2label: dict[int, str]
    pad_to: int | None
    split_report: Any
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few test texts, for the app


def prepare_data(args: DataArguments, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreparedData:
    """:func:`load_splits`, then tokenise (padding to a fixed length is the collator's job)."""
    splits, report = load_splits(args, seed)
    tokens = tokenize(splits, tokenizer, max_length=args.max_length)
    pad_to = None
    if args.padding == "longest_in_dataset":
        # the book pads every split to the longest training example and truncates val/test to it
        pad_to = longest_length(tokens["train"])
        tokens = DatasetDict(
            {
                name: ds if name == "train" else tokenize(splits[name], tokenizer, max_length=pad_to)
                for name, ds in tokens.items()
            }
        )
    names = splits["train"].features["label"].names
    id2label = dict(enumerate(names))
    return PreparedData(
        tokens, id2label, pad_to, report, sample_examples(splits["test"], id2label, seed=seed)
    )


def make_loaders(
    data: PreparedData, tokenizer: PreTrainedTokenizerBase, args: DataArguments, train_args: TrainArguments
) -> dict[str, DataLoader]:
    """The shuffled training loader, and an evaluation loader per split that runs longest first (batches of
    similar lengths pad least; :func:`loader_order` maps its predictions back to the split's order)."""
    common = {"padding": args.padding, "padding_side": args.padding_side, "pad_to": data.pad_to}
    loaders = {
        "train_shuffled": make_dataloader(
            data.tokens["train"],
            tokenizer,
            train_args.batch_size,
            shuffle=True,
            seed=train_args.seed,
            group_by_length=args.group_by_length,
            drop_last=train_args.drop_last,
            **common,
        )
    }
    eval_batch_size = train_args.eval_batch_size or (
        1 if args.padding == "none" else 4 * train_args.batch_size
    )
    for name, ds in data.tokens.items():
        loaders[name] = make_dataloader(ds, tokenizer, eval_batch_size, group_by_length=True, **common)
    return loaders


def loader_order(loader: DataLoader) -> torch.Tensor:
    """The dataset index of each example in the order an (unshuffled) loader yields them."""
    sampler = loader.batch_sampler
    return torch.tensor([i for batch in sampler for i in batch], dtype=torch.long)


def in_dataset_order(
    outputs: tuple[torch.Tensor, torch.Tensor], order: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels put back in the dataset's order (``outputs`` came in ``order``)."""
    restored = []
    for tensor in outputs:
        out = torch.empty_like(tensor)
        out[order] = tensor
        restored.append(out)
    return restored[0], restored[1]


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


def configure_logging(level: int = logging.INFO) -> None:
    """Recipe logging: INFO on the main process, warnings only on the others; accelerate's chatter quieter."""
    main = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(
        level=level if main else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def has_accelerator() -> bool:
    """True when a GPU (CUDA, MPS or XPU) is there for accelerate to use."""
    return torch.cuda.is_available() or is_mps_available() or is_xpu_available()


def warn_if_cpu_underused(accelerator: Accelerator) -> None:
    """Say so when training on CPU with fewer threads than cores (``accelerate launch`` defaults to one)."""
    cores = (os.cpu_count() or 1) // accelerator.num_processes
    if accelerator.device.type == "cpu" and torch.get_num_threads() < cores:
        logger.warning(
            "training on CPU with %d thread(s) per process while %d cores are free: pass "
            "--num_cpu_threads_per_process %d to accelerate launch (its default is 1)",
            torch.get_num_threads(), cores, cores,
        )  # fmt: skip


def run_identity(model_args: ModelArguments, data_args: DataArguments, data: PreparedData) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed by this run: the model arguments, the data arguments
    (the source path aside: the fingerprint of the tokenised splits stands for the data itself)."""
    identity = {f"model.{k}": v for k, v in asdict(model_args).items()}
    identity |= {f"data.{k}": v for k, v in asdict(data_args).items() if k != "data_source"}
    identity |= {f"data.fingerprint.{name}": ds._fingerprint for name, ds in data.tokens.items()}
    return identity


def on_main_process(process: PartialState, check: Callable[[], T]) -> T:
    """Run ``check`` on the main process alone and give every process its result, or raise its user error
    (a ``ValueError``/``OSError`` such as :class:`HubError` or ``FileExistsError``) on every process.

    One process decides, so processes cannot race (e.g. one seeing a run folder that another just made).
    """
    outcome: list[Any] = [None, None]
    if process.is_main_process:
        try:
            outcome = [check(), None]
        except (ValueError, OSError) as err:
            outcome = [None, err]
    result, error = broadcast_object_list(outcome)
    if error is not None:
        raise error
    return result


def check_push(process: PartialState, args: TrainArguments) -> str | None:
    """With ``--push_to_hub``, the hub pre-flight (token, endpoint, repo) on the main process; every process
    raises its :class:`HubError`. Returns the full repo id, or None when nothing is pushed."""
    if not args.push_to_hub:
        return None
    return on_main_process(
        process, lambda: check_hub(args.hub_model_id, private=args.hub_private, revision=args.hub_revision)
    )


def frozen_prefix_cache(
    model: torch.nn.Module,
    data: PreparedData,
    loaders: dict[str, DataLoader],
    accelerator: Accelerator,
    mode: str,
    pad_id: int,
    padding_side: str = "right",
) -> tuple[FrozenPrefix | None, dict[str, Any]]:
    """With ``--cache_frozen auto`` and a frozen, deterministic lower part (:func:`plan_cache`): compute the
    missing boundary states of every split, make the loaders carry them and the frozen blocks skip.

    Returns the attached prefix (None when not used) and the record metrics.json keeps (why, depth, store,
    examples reused and computed, seconds).
    """
    if mode == "off":
        logger.info("frozen-prefix cache: off (--cache_frozen off)")
        return None, {"used": False, "reason": "--cache_frozen off", "seconds": 0.0}
    plan = plan_cache(model, padding_side)
    if not plan.eligible:
        logger.info("frozen-prefix cache: not used: %s", plan.reason)
        return None, {"used": False, "reason": plan.reason, "seconds": 0.0}
    start = time.perf_counter()
    examples = [ids for ds in data.tokens.values() for ids in ds["input_ids"]]
    need, free = estimated_bytes(examples, model), shutil.disk_usage(get_cache_dir()).free
    if need > 0.9 * free:
        reason = f"it needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB are free in {get_cache_dir()}"
        logger.warning("frozen-prefix cache: not used: %s (set HF_SPAM_CACHE to a larger disk)", reason)
        return None, {"used": False, "reason": reason, "seconds": 0.0}
    model.to(accelerator.device)
    prefix = FrozenPrefix(model, plan.depth)
    store = PrefixStore.open(prefix_fingerprint(model, plan.depth, accelerator.mixed_precision))
    ensure_cached(
        prefix, store, examples, pad_id=pad_id, device=accelerator.device,
        process_index=accelerator.process_index, num_processes=accelerator.num_processes,
        barrier=accelerator.wait_for_everyone, autocast=accelerator.autocast,
    )  # fmt: skip
    prefix.attach()
    for loader in loaders.values():
        loader.collate_fn = CachedCollator(loader.collate_fn, store)
    seconds = time.perf_counter() - start
    logger.info(
        "frozen-prefix cache: used (%s); %s: %d examples reused, %d computed in %.1f s",
        plan.reason, store.root, store.reused, store.computed, seconds,
    )  # fmt: skip
    record = {
        "used": True, "reason": plan.reason, "depth": plan.depth, "store": str(store.root),
        "examples_reused": store.reused, "examples_computed": store.computed, "seconds": seconds,
    }  # fmt: skip
    return prefix, record


def run_classification(
    model_args: ModelArguments,
    data_args: DataArguments,
    train_args: TrainArguments,
    lora_args: LoraArguments | None = None,
    point_args: OperatingPointArguments | None = None,
) -> dict:
    """Fine-tune a classifier as the arguments say; writes the run folder, returns the metrics.json dict."""
    point_args = point_args or OperatingPointArguments()
    check_lora_arguments(model_args, lora_args)
    process = PartialState(cpu=not has_accelerator())  # then `accelerate launch --multi_gpu` runs on CPUs
    hub_repo = check_push(process, train_args)  # fails now, not after training
    run_dir = run_dir_for(train_args, model_args, data_args)
    on_main_process(
        process,
        lambda: claim_run_dir(run_dir, train_args.overwrite_output_dir, train_args.resume_from_checkpoint),
    )
    if train_args.resume_from_checkpoint:
        find_checkpoint(train_args.resume_from_checkpoint, run_dir)  # fail before loading anything
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
    tokenizer = tokenizer_for(model_args)
    with accelerator.main_process_first():
        data = prepare_data(data_args, tokenizer, train_args.seed)
    lora_args = lora_args or LoraArguments()
    model, lora_base = _build_model(model_args, data, tokenizer, lora_args, train_args.seed)
    counts = parameter_counts(model)
    loaders = make_loaders(data, tokenizer, data_args, train_args)
    prefix, cache_record = frozen_prefix_cache(
        model,
        data,
        loaders,
        accelerator,
        train_args.cache_frozen,
        tokenizer.pad_token_id,
        data_args.padding_side,
    )
    if accelerator.is_main_process:
        extra = [lora_args] if model_args.trainable == "lora" else []
        write_args(run_dir, model_args, data_args, train_args, point_args, *extra)
    accelerator.init_trackers(
        run_dir.name, config={"lr": train_args.learning_rate, "model": model_args.model}
    )
    identity, class_weights = run_identity(model_args, data_args, data), None
    if point_args.class_weights == "balanced":
        class_weights = balanced_class_weights(data.tokens["train"]["label"], len(data.id2label))
        identity["train.class_weights"] = class_weights
        logger.info(
            "--class_weights balanced: %s", dict(zip(data.id2label.values(), class_weights, strict=True))
        )
    trainer = Trainer(
        model, loaders["train_shuffled"], loaders["validation"], accelerator, train_args, run_dir,
        identity=identity, class_weights=class_weights, prefix=prefix,
    )  # fmt: skip
    state = trainer.train()
    start = time.perf_counter()
    outputs = {}
    for name in data.tokens:
        last = trainer.last_eval
        if name == "validation" and last is not None and last[0] == state.best_step:
            found = last[1:]  # the best weights are those of the latest evaluation: no second pass
        else:
            found = predict_logits(trainer.model, accelerator.prepare(loaders[name]), accelerator, prefix)
        outputs[name] = in_dataset_order(found, loader_order(loaders[name]))
    evaluation_seconds = state.eval_seconds + time.perf_counter() - start
    if prefix is not None:
        prefix.detach()  # the model is the full model again (saved, pushed, used by the caller)
    splits = {
        name: metrics_from_logits(logits, labels) | calibration_metrics(torch.softmax(logits, -1), labels)
        for name, (logits, labels) in outputs.items()
    }
    point, point_record = select_operating_point(outputs, data.id2label, point_args)
    metrics = metrics_record(
        recipe="fine_tuning",
        run_dir=run_dir,
        model=model_args.model,
        implementation=model_args.implementation,
        dataset=data_args.dataset,
        splits=splits,
        split_report=data.split_report,
        seconds={
            "training": state.train_seconds,
            "evaluation": evaluation_seconds,
            "cache_building": cache_record["seconds"],
        },
        examples=state.examples_seen,
        best={
            "metric": f"val_{train_args.metric_for_best.removeprefix('val_')}",
            "value": state.best_metric,
            "step": state.best_step,
        },
        details={
            "optimizer_steps": state.global_step,
            "epochs_completed": state.epoch,
            "epoch_training_seconds": state.epoch_seconds,
            "stopped_early": state.stopped_early,
            "class_weights": class_weights,
            "frozen_prefix_cache": cache_record,
        },
        operating_point=point_record,
        parameters=counts,
        device=accelerator.device,
        num_processes=accelerator.num_processes,
        mixed_precision=accelerator.mixed_precision,
    )
    start = time.perf_counter()
    if accelerator.is_main_process:
        test_probabilities = torch.softmax(outputs["test"][0], -1)  # in dataset order
        write_predictions(run_dir / PREDICTIONS_FILE, test_probabilities, outputs["test"][1])
        write_json(run_dir / "history.json", state.history)
        point.save(run_dir)
        write_examples(run_dir, data.examples)
        plot_curves(state.history, run_dir / "curves.png", title=f"{model_args.model} on {data_args.dataset}")
        if train_args.save_model:
            _save_model(accelerator.unwrap_model(trainer.model), tokenizer, run_dir, lora_base, lora_args)
        metrics["seconds"]["saving"] = time.perf_counter() - start
        write_json(run_dir / "metrics.json", metrics)  # last: a run folder with metrics.json is complete
    accelerator.wait_for_everyone()
    accelerator.end_training()
    logger.info("run folder: %s; test accuracy %.4f", run_dir, splits["test"]["accuracy"])
    if hub_repo and accelerator.is_main_process:
        push_run(run_dir, hub_repo, private=train_args.hub_private, revision=train_args.hub_revision)
    return metrics


def _build_model(
    model_args: ModelArguments,
    data: PreparedData,
    tokenizer: PreTrainedTokenizerBase,
    lora_args: LoraArguments,
    seed: int,
) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """The classifier with its trainable policy applied; for LoRA also the record that rebuilds its base."""
    if model_args.trainable == "lora":
        model, lora_base = build_lora_classifier(model_args, data.id2label, tokenizer, lora_args, seed)
    else:
        model, lora_base = build_classifier(model_args, data.id2label, tokenizer), None
    set_trainable(model, model_args.trainable)
    return model, lora_base


def _save_model(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    run_dir: Path,
    lora_base: dict[str, Any] | None,
    lora_args: LoraArguments,
) -> None:
    """The final model and tokenizer in the run folder: the peft adapter (+ merged model on request) for
    LoRA, else the whole model with ``save_pretrained``."""
    if lora_base is not None:
        save_lora_run(model, run_dir, lora_base)
    else:
        model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    if lora_base is not None and lora_args.merge:
        merge_lora_run(run_dir)


def summary_line(metrics: dict) -> str:
    """One JSON line for a recipe to print: the run, accuracy per split and training seconds."""
    accuracy = {split: round(m["accuracy"], 4) for split, m in metrics["splits"].items()}
    return json.dumps(
        {"run": metrics["run"], "accuracy": accuracy, "seconds": round(metrics["seconds"]["training"], 1)}
    )
