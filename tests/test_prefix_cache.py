"""The frozen-prefix cache: a step from the cache is a step of the full model; reuse; invalidation; `auto`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from hf_spam import GPT2Config
from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.data.batching import PaddingCollator
from hf_spam.models.adapters import AdapterArguments, apply_adapter
from hf_spam.models.build import positions_from_mask
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.trainable import set_trainable
from hf_spam.training.fine_tune import run_classification
from hf_spam.training.prefix_cache import (
    CachedCollator,
    FrozenPrefix,
    ensure_cached,
    forward_logits,
    plan_cache,
    prefix_fingerprint,
)
from hf_spam.training.prefix_store import PrefixStore

REPO = Path(__file__).resolve().parents[1]
VOCAB, PAD = 90, 0
LENGTHS = (5, 11, 3, 8)  # one batch of four examples of different lengths


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def tiny_model(kind: str, layers: int = 3, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "ours":
        config = GPT2Config(vocab_size=VOCAB, emb_dim=32, n_layers=layers, n_heads=2, context_length=64,
                            dropout=dropout)  # fmt: skip
        return GPT2Classifier(config, num_labels=2)
    if kind == "llama":
        config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, pad_token_id=PAD, num_labels=2,
                             attention_dropout=dropout)  # fmt: skip
        return positions_from_mask(LlamaForSequenceClassification(config))
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=dropout, classifier_dropout=0.0,
                        attention_probs_dropout_prob=dropout, pad_token_id=PAD, num_labels=2)  # fmt: skip
    return BertForSequenceClassification(config)


class Pad:
    """The minimal tokenizer interface PaddingCollator uses."""

    pad_token_id = PAD
    model_input_names = ("input_ids", "attention_mask")

    def pad(self, inputs, padding, max_length, padding_side, return_attention_mask, return_tensors):
        width = max(len(x["input_ids"]) for x in inputs)
        ids = torch.full((len(inputs), width), PAD)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for i, x in enumerate(inputs):
            n = len(x["input_ids"])
            cols = slice(0, n) if padding_side == "right" else slice(width - n, width)
            ids[i, cols], mask[i, cols] = torch.tensor(x["input_ids"]), 1
        return {"input_ids": ids, "attention_mask": mask}


def examples() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [
        {"input_ids": torch.randint(1, VOCAB, (n,), generator=g).tolist(), "label": i % 2}
        for i, n in enumerate(LENGTHS)
    ]


def one_step(model, batch, prefix=None) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and gradients of one SGD step. (Adam's first step is lr * sign(gradient): on a gradient that is
    zero in exact arithmetic, e.g. the key bias, float noise of 1e-12 would move the weight by a whole lr.)"""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    loss = F.cross_entropy(forward_logits(model, batch, prefix), batch["labels"])
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer.step()
    return loss.item(), grads


@pytest.mark.parametrize(
    ("kind", "side", "policy"),
    [
        ("ours", "right", "last_block"), ("ours", "left", "last_block"), ("ours", "left", "head"),
        ("llama", "right", "last_block"), ("llama", "left", "last_block"), ("llama", "right", "head"),
        ("bert", "right", "last_block"), ("ours", "left", "lora_top"), ("llama", "right", "lora_top"),
    ],
)  # fmt: skip
def test_one_step_from_the_cache_equals_one_step_of_the_full_model(kind, side, policy, tmp_path):
    if policy == "lora_top":  # peft adapters in the top block only (--lora_layers 1), head in full
        full = apply_adapter(tiny_model(kind), "lora", AdapterArguments(lora_layers=1))
    else:
        full = tiny_model(kind)
        set_trainable(full, policy)
    cached = copy.deepcopy(full)
    before = {n: p.detach().clone() for n, p in full.named_parameters() if p.requires_grad}
    plan = plan_cache(cached, side)
    assert plan.depth == (3 if policy == "head" else 2), plan.reason
    collate = PaddingCollator(Pad(), padding_side=side)
    data = examples()
    batch = collate(data)

    prefix = FrozenPrefix(cached, plan.depth)
    store = PrefixStore.open(prefix_fingerprint(cached, plan.depth), tmp_path)
    ensure_cached(prefix, store, [x["input_ids"] for x in data], pad_id=PAD, device=torch.device("cpu"))
    prefix.attach()
    cached_batch = CachedCollator(collate, store)(data)
    assert torch.equal(cached_batch["input_ids"], batch["input_ids"])

    (loss_full, grads_full), (loss_cached, grads_cached) = (
        one_step(full, batch),
        one_step(cached, cached_batch, prefix),
    )
    assert loss_cached == pytest.approx(loss_full, abs=1e-6)
    assert grads_full.keys() == grads_cached.keys()
    for name, grad in grads_full.items():
        torch.testing.assert_close(grads_cached[name], grad, atol=1e-6, rtol=0, msg=name)
    for (name, a), (_, b) in zip(full.named_parameters(), cached.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)
    after = dict(full.named_parameters())
    assert any(not torch.equal(after[n], before[n]) for n in before)  # the step did change the model
    prefix.detach()  # the full model again: its forward needs no cached states
    forward_logits(cached, batch)


def test_frozen_blocks_refuse_to_run_without_their_cached_states():
    model = tiny_model("ours")
    set_trainable(model, "last_block")
    prefix = FrozenPrefix(model, 2)
    prefix.attach()
    with pytest.raises(RuntimeError, match="frozen_hidden"):
        model(input_ids=torch.ones(1, 4, dtype=torch.long))


@pytest.mark.parametrize(("policy", "depth"), [("last_block", 2), ("last_two_blocks", 1), ("head", 3)])
def test_the_boundary_is_the_first_trained_block(policy, depth):
    model = tiny_model("llama")
    set_trainable(model, policy)
    assert plan_cache(model).depth == depth


def test_auto_refuses_and_says_why():
    model = tiny_model("ours")
    set_trainable(model, "all")
    plan = plan_cache(model)
    assert not plan.eligible and "block 0 is trained" in plan.reason
    for kind in ("ours", "llama", "bert"):
        model = tiny_model(kind, dropout=0.1)
        set_trainable(model, "last_block")
        plan = plan_cache(model)
        assert not plan.eligible and "dropout 0.1" in plan.reason and "--dropout 0" in plan.reason
    bert = tiny_model("bert")
    set_trainable(bert, "last_block")
    plan = plan_cache(bert, "left")  # BERT's positions count from column 0: left pads move them
    assert not plan.eligible and "--padding_side right" in plan.reason
    assert plan_cache(bert, "right").eligible
    lora = apply_adapter(tiny_model("ours"), "lora", AdapterArguments())  # adapters in every block
    plan = plan_cache(lora)
    assert not plan.eligible and "block 0 is trained" in plan.reason
    top = apply_adapter(
        tiny_model("ours"), "lora", AdapterArguments(lora_layers=1)
    )  # adapters in the top block only
    assert plan_cache(top).depth == 2
    names = [n for n, p in top.named_parameters() if p.requires_grad and "lora_" in n]
    assert names and all(".h.2." in n for n in names)


def test_store_is_reused_and_keyed_by_weights_depth_and_token_ids(tmp_path):
    model = tiny_model("ours")
    set_trainable(model, "last_block")
    ids = [x["input_ids"] for x in examples()]

    def ensure(model, depth, ids):
        store = PrefixStore.open(prefix_fingerprint(model, depth), tmp_path)
        return ensure_cached(FrozenPrefix(model, depth), store, ids, pad_id=PAD, device=torch.device("cpu"))

    first = ensure(model, 2, ids)
    assert (first.reused, first.computed) == (0, 4)
    again = ensure(model, 2, ids + ids[:2])  # a second run (duplicates count once)
    assert (again.reused, again.computed) == (4, 0) and again.root == first.root
    longer = ensure(model, 2, [*ids, [7, 8, 9]])  # more data: extended, not rebuilt
    assert (longer.reused, longer.computed) == (4, 1) and len(list(longer.root.glob("shard-*"))) == 2
    cut = ensure(model, 2, [x[:4] for x in ids])  # another max_length or tokenizer: other token ids
    assert cut.computed == 4 - sum(len(x) <= 4 for x in ids)
    assert ensure(model, 1, ids).computed == 4  # another depth: another store
    other = tiny_model("ours")
    with torch.no_grad():
        other.transformer.h[0].mlp.c_fc.weight[0, 0] += 1.0  # another frozen weight
    set_trainable(other, "last_block")
    assert ensure(other, 2, ids).computed == 4
    with torch.no_grad():
        model.transformer.h[2].mlp.c_fc.weight.add_(1.0)  # a trained (upper) weight: the store still holds
    assert ensure(model, 2, ids).computed == 0


def recipe_args(model_dir, tokenizer_dir, sms_file, out, *extra: str) -> list[str]:
    return [
        "--model", str(model_dir), "--weights", "random", "--tokenizer", str(tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(out), "--trainable", "last_block",
        "--max_train_samples", "48", "--max_eval_samples", "20", "--batch_size", "8", "--num_epochs", "2",
        "--eval_every", "3", "--learning_rate", "1e-3", "--save_model", "false", *extra,
    ]  # fmt: skip


def run(argv):
    return run_classification(*parse_args((ModelArguments, DataArguments, TrainArguments), argv))


def cache_record(metrics) -> dict:
    return metrics["training"]["details"]["frozen_prefix_cache"]


def test_a_run_from_the_cache_matches_the_full_run_and_a_second_run_reuses_it(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_SPAM_CACHE", str(tmp_path / "cache"))
    args = recipe_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path)
    off = run([*args, "--run_name", "off", "--cache_frozen", "off"])
    AcceleratorState._reset_state(reset_partial_state=True)
    first = run([*args, "--run_name", "first"])
    AcceleratorState._reset_state(reset_partial_state=True)
    second = run([*args, "--run_name", "second", "--learning_rate", "3e-3"])  # another run, same examples
    AcceleratorState._reset_state(reset_partial_state=True)
    shorter = run([*args, "--run_name", "shorter", "--max_length", "16"])

    assert cache_record(off) == {"used": False, "reason": "--cache_frozen off", "seconds": 0.0}
    record = cache_record(first)
    assert record["used"] and record["depth"] == 1 and record["examples_reused"] == 0
    assert record["examples_computed"] == 88 and first["seconds"]["cache_building"] > 0
    assert (cache_record(second)["examples_reused"], cache_record(second)["examples_computed"]) == (88, 0)
    assert cache_record(second)["store"] == record["store"]
    assert cache_record(shorter)["examples_computed"] > 0  # truncated texts are other token ids
    # the same training, read from the cache: every evaluation and final metric agrees with the full model
    history = [json.loads((tmp_path / r / "history.json").read_text()) for r in ("off", "first")]
    assert [h["step"] for h in history[0]] == [h["step"] for h in history[1]]
    for a, b in zip(*history, strict=True):
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-5)
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
    for split in ("train", "validation", "test"):
        assert first["splits"][split]["confusion_matrix"] == off["splits"][split]["confusion_matrix"]
        assert first["splits"][split]["loss"] == pytest.approx(off["splits"][split]["loss"], abs=1e-5)


def test_metrics_report_cache_building_and_saving_seconds(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    metrics = run([*recipe_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path), "--run_name", "r",
                   "--save_model", "true"])  # fmt: skip
    seconds = metrics["seconds"]
    assert set(seconds) == {"training", "evaluation", "cache_building", "saving"}
    assert seconds["saving"] > 0 and seconds["cache_building"] == cache_record(metrics)["seconds"]
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["seconds"] == seconds


def test_two_processes_each_cache_a_share_and_read_all(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path):
    cache = tmp_path / "cache"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "recipes" / "gpt2_classifier.py"),
        *recipe_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path), "--run_name", "ddp",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_SPAM_CACHE": str(cache)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    record = cache_record(metrics)
    assert metrics["num_processes"] == 2 and record["used"] and record["examples_computed"] == 88
    shards = list(Path(record["store"]).glob("shard-*.safetensors"))
    assert len(shards) == 2  # one share per process, both read by both
    assert (
        metrics["splits"]["test"]["n"] == 20
        and sum(map(sum, metrics["splits"]["test"]["confusion_matrix"])) == 20
    )


def test_a_cache_larger_than_the_free_disk_is_not_built(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path, monkeypatch
):
    import shutil

    import hf_spam.training.prefix_cache

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        hf_spam.training.prefix_cache.shutil, "disk_usage", lambda path: usage._replace(free=1000)
    )
    metrics = run([*recipe_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path), "--run_name", "r"])
    record = cache_record(metrics)
    assert not record["used"] and "GiB are free" in record["reason"]
    assert metrics["splits"]["test"]["n"] == 20  # the run went on without the cache


def test_no_padding_with_accumulation_evaluates_one_example_at_a_time(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    args = recipe_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path)
    metrics = run([*args, "--run_name", "none", "--padding", "none", "--batch_size", "1",
                   "--gradient_accumulation_steps", "8", "--max_train_samples", "16"])  # fmt: skip
    assert metrics["training"]["details"]["optimizer_steps"] == 4  # 16 examples / 8 per step x 2 epochs
    assert cache_record(metrics)["used"] and metrics["splits"]["test"]["n"] == 20
