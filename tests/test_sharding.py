"""FSDP: the plugin completed for our models, sharded training equal to unsharded, the model saved whole.

accelerate runs FSDP only on an accelerator. On CPUs these tests run torch's FSDP2 itself (gloo, two
processes) and accelerate's FSDP2 path switched on for CPUs (tests/fsdp_cpu_run.py); the GPU test at the
end runs a real ``accelerate launch --use_fsdp`` and is skipped, with the reason, where no GPU is.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
from conftest import SHARED
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

from hf_spam import GPT2Config
from hf_spam.data import DataArguments, load_splits
from hf_spam.models.adapters import AdapterArguments, apply_adapter, load_adapter_classifier
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.training.sharding import block_class_names, canonical_name, complete_fsdp_plugin, meta_copy

REPO = Path(__file__).resolve().parents[1]
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def tiny_gpt2() -> GPT2Classifier:
    return GPT2Classifier(GPT2Config(vocab_size=64, context_length=16, emb_dim=16, n_layers=2, n_heads=2))


def tiny_transformers(kind: str) -> torch.nn.Module:
    import transformers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    small = {"vocab_size": 64}
    if kind == "gpt2":
        config = transformers.GPT2Config(n_embd=16, n_layer=2, n_head=2, **small)
        return transformers.GPT2ForSequenceClassification(config)
    if kind == "llama":
        return LlamaForSequenceClassification(LlamaConfig(hidden_size=16, intermediate_size=32,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, **small))  # fmt: skip
    return BertForSequenceClassification(
        BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, **small)
    )


def test_each_models_blocks_are_its_fsdp_units():
    assert block_class_names(tiny_gpt2()) == ["Block"]
    assert block_class_names(apply_adapter(tiny_gpt2(), "lora", AdapterArguments(lora_r=2))) == ["Block"]
    assert block_class_names(tiny_transformers("gpt2")) == ["GPT2Block"]
    assert block_class_names(tiny_transformers("llama")) == ["LlamaDecoderLayer"]
    assert block_class_names(tiny_transformers("bert")) == ["BertLayer"]


@pytest.mark.parametrize("version", [1, 2])
def test_a_launch_without_a_wrap_policy_wraps_every_block(version, monkeypatch):
    """accelerate's own plugin, as ``accelerate launch --use_fsdp --fsdp_version N`` builds it (no policy):
    completed, accelerate's wrap policy picks exactly the blocks."""
    monkeypatch.delenv("FSDP_AUTO_WRAP_POLICY", raising=False)
    model = tiny_gpt2()
    plugin = FullyShardedDataParallelPlugin(fsdp_version=version)
    assert plugin.auto_wrap_policy is None  # accelerate's default: no wrapping, one unit for the whole model
    complete_fsdp_plugin(plugin, model)
    assert plugin.auto_wrap_policy is transformer_auto_wrap_policy
    assert plugin.transformer_cls_names_to_wrap == ["Block"]
    assert plugin.use_orig_params is (True if version == 1 else None)
    plugin.set_auto_wrap_policy(model)  # what accelerate's prepare does first, for both versions
    if version == 2:
        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        assert [name for name, module in model.named_modules() if policy(module)] == [
            "transformer.h.0", "transformer.h.1",
        ]  # fmt: skip
    else:
        assert plugin.auto_wrap_policy.keywords["transformer_layer_cls"] == {type(model.transformer.h[0])}


def test_the_launchs_own_wrap_choice_is_kept(monkeypatch):
    monkeypatch.setenv("FSDP_AUTO_WRAP_POLICY", "NO_WRAP")
    plugin = complete_fsdp_plugin(FullyShardedDataParallelPlugin(fsdp_version=2), tiny_gpt2())
    assert plugin.auto_wrap_policy is None
    monkeypatch.setenv("FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP")
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "MLP")
    plugin = complete_fsdp_plugin(FullyShardedDataParallelPlugin(fsdp_version=2), tiny_gpt2())
    assert plugin.transformer_cls_names_to_wrap == ["MLP"]


def test_meta_copy_costs_no_weights_and_takes_the_gathered_state():
    torch.manual_seed(0)
    model = tiny_gpt2().eval()
    skeleton = meta_copy(model)
    assert all(p.is_meta for p in skeleton.parameters()) and not any(p.is_meta for p in model.parameters())
    assert [n for n, _ in skeleton.named_parameters()] == [n for n, _ in model.named_parameters()]
    skeleton.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, assign=True)
    ids = torch.randint(0, 63, (2, 7))
    torch.testing.assert_close(skeleton(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)
    llama = tiny_transformers("llama")
    buffers = dict(meta_copy(llama).named_buffers())
    assert buffers and all(b.device.type == "cpu" for b in buffers.values())  # rotary frequencies are real


def test_wrapper_prefixes_leave_parameter_names():
    name = "_orig_mod.transformer.h.0._fsdp_wrapped_module._checkpoint_wrapped_module.attn.c_attn.weight"
    assert canonical_name(name) == "transformer.h.0.attn.c_attn.weight"


@pytest.mark.slow
def test_fsdp2_on_cpus_trains_and_gathers_as_the_unsharded_model(tmp_path):
    """torch's FSDP2 on two CPU processes: our GPT-2 (every layer), a Llama (last block) and a LoRA run,
    blocks sharded by class with activation checkpointing inside: the loss, the gradients, one AdamW step,
    the best-weights round trip and the gathered model (saved, reloaded by transformers or peft) all equal
    the same model unsharded."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tests" / "sharding_worker.py"), str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **CPU_ENV}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    main, other = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert set(main) == {"gpt2_all", "llama_last_block", "gpt2_lora"}
    for case, found in main.items():
        assert found["sharded"] and found["checkpointing"] and found["wrapped"], case
        assert found["same_grad_names"] and found["best_names"] and found["gathered_is_plain"], case
        for key in ("loss_diff", "grad_diff", "best_diff", "loaded_diff", "sharded_logits_diff",
                    "gathered_logits_diff", "saved_logits_diff"):  # fmt: skip
            assert found[key] <= 1e-6, (case, key, found[key])
        assert other[case]["best_empty_elsewhere"] and other[case]["gathered_elsewhere"], case
        assert other[case]["grad_diff"] <= 1e-6 and other[case]["loaded_diff"] <= 1e-6, case


def recipe_args(model: Path, tokenizer: Path | None, sms_file: Path, output_dir: Path) -> list[str]:
    args = ["--model", str(model), "--data_source", str(sms_file), "--output_dir", str(output_dir),
            "--max_train_samples", "40", "--max_eval_samples", "12", "--num_epochs", "2",
            "--eval_every", "2"]  # fmt: skip
    return args + (["--tokenizer", str(tokenizer)] if tokenizer else [])


def saved_model_reproduces_the_run(run_dir: Path, sms_file: Path) -> float:
    """The largest difference between the test probabilities of the saved model, loaded by plain
    transformers (an adapter: by hf_spam's loader, which rebuilds and checks its base), and those the run's
    in-memory (sharded) model wrote to test_predictions.csv."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    saved = json.loads((run_dir / "args.json").read_text())["DataArguments"]
    splits, _ = load_splits(DataArguments(**{**saved, "data_source": str(sms_file)}), seed=123)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if (run_dir / "adapter_config.json").is_file():
        model = load_adapter_classifier(run_dir)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(run_dir).eval()
    with (run_dir / "test_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(splits["test"])
    worst = 0.0
    for text, row in zip(splits["test"]["text"], rows, strict=True):
        with torch.no_grad():
            probabilities = model(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
        worst = max(worst, *(abs(probabilities[k].item() - float(row[f"prob_{k}"])) for k in range(2)))
    return worst


@pytest.mark.slow
def test_a_recipe_under_accelerates_fsdp2_trains_resumes_and_saves_lora_too(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    """The GPT-2 recipe through accelerate's FSDP2 path on two CPU processes (tests/fsdp_cpu_run.py):
    blocks wrapped by class, the cache refused with its reason, sharded checkpoints that resume to the same
    result, and the gathered model in transformers' format, giving the run's own test probabilities; then a
    LoRA run, whose saved adapter gives its run's test probabilities too."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              str(REPO / "tests" / "fsdp_cpu_run.py"), "gpt2_classifier",
              *recipe_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path), "--weights", "random",
              "--trainable", "last_block", "--gradient_checkpointing", "--run_name", "fsdp"]  # fmt: skip
    env = {**os.environ, **CPU_ENV, "HF_SPAM_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "fsdp"
    first = json.loads((run_dir / "metrics.json").read_text())
    details = first["training"]["details"]
    assert details["fsdp"]["fsdp_version"] == 2 and details["fsdp"]["wrapped"] == ["Block"]
    assert details["gradient_checkpointing"]
    assert not details["frozen_prefix_cache"]["used"] and "FSDP" in details["frozen_prefix_cache"]["reason"]
    assert (run_dir / "checkpoints" / "step_0000002" / "pytorch_model_fsdp_0").is_dir()  # sharded checkpoint
    assert saved_model_reproduces_the_run(run_dir, sms_file) <= 1e-5
    resumed = [*launch[:-2], "--resume_from_checkpoint", str(run_dir / "checkpoints" / "step_0000002")]
    done = subprocess.run(resumed, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads((run_dir / "metrics.json").read_text())
    for split, found in first["splits"].items():
        assert again["splits"][split]["loss"] == pytest.approx(found["loss"], abs=1e-6)
        assert again["splits"][split]["confusion_matrix"] == found["confusion_matrix"]
    # LoRA under FSDP: the peft model sharded by its blocks, the adapter saved from the gathered model
    lora = [*launch[:-5], "--trainable", "lora", "--gradient_checkpointing", "--run_name", "lora"]
    done = subprocess.run(lora, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert saved_model_reproduces_the_run(tmp_path / "lora", sms_file) <= 1e-5


def smollm2_or_stand_in(tmp_path: Path) -> Path:
    """SmolLM2-135M-Instruct from ``$HF_SPAM_MODELS`` (the folder ``../shared/tools/offline_models.py DIR``
    writes) or ../shared/models; else a tiny model of its architecture (Llama), saved with its tokenizer."""
    for root in (os.environ.get("HF_SPAM_MODELS"), SHARED / "models"):
        if root and (Path(root) / "SmolLM2-135M-Instruct" / "config.json").is_file():
            return Path(root) / "SmolLM2-135M-Instruct"
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "smollm2-architecture"
    config = LlamaConfig(vocab_size=50257, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP needs a GPU (accelerate refuses it on CPUs)")
@pytest.mark.parametrize("which", ["our_gpt2", "our_gpt2_lora", "smollm2"])
def test_fsdp_on_one_gpu_trains_and_saves_a_model_transformers_loads(
    which, tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    """``accelerate launch --use_fsdp --fsdp_version 2`` on one GPU: the recipe trains (checkpointing on,
    the cache refused), and the saved model, loaded by plain transformers, gives the test probabilities the
    in-memory sharded model wrote."""
    if which.startswith("our_gpt2"):
        model_args = recipe_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path)
        model_args += ["--weights", "random"]
    else:
        folder = smollm2_or_stand_in(tmp_path)
        tokenizer = None if (folder / "tokenizer.json").is_file() else gpt2_tokenizer_dir
        model_args = [*recipe_args(folder, tokenizer, sms_file, tmp_path), "--implementation", "transformers"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--use_fsdp", "--fsdp_version", "2",
           "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           str(REPO / "recipes" / "gpt2_classifier.py"), *model_args,
           "--trainable", "lora" if which.endswith("lora") else "last_block",
           "--gradient_checkpointing", "--run_name", which]  # fmt: skip
    env = {**os.environ, "HF_SPAM_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / which / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda")
    assert metrics["training"]["details"]["fsdp"]["fsdp_version"] == 2
    assert not metrics["training"]["details"]["frozen_prefix_cache"]["used"]
    assert saved_model_reproduces_the_run(tmp_path / which, sms_file) <= 1e-4
