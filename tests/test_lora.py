"""LoRA adapters (peft) on tiny in-process models: what trains, save/load, merge, the recipes end to end.

Follows peft's own tests for custom models (tests/test_custom_models.py): only adapter (and head) weights
move, and a save/load round trip is checked only after asserting that the adapter changed the output.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from helpers import logits, recipe, train_steps
from safetensors.torch import load_file
from transformers.pytorch_utils import Conv1D

from hf_spam.arguments import ModelArguments
from hf_spam.data.tokenizer import load_tokenizer
from hf_spam.models.adapters import (
    AdapterArguments,
    build_adapter_classifier,
    check_adapter_arguments,
    default_target_modules,
    save_adapter_run,
)
from hf_spam.models.adapters.configs import lora_config
from hf_spam.models.build import build_classifier
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.load import load_classifier
from hf_spam.models.trainable import parameter_counts
from hf_spam.run_folder import ADAPTER_BASE_FILE

REPO = Path(__file__).resolve().parents[1]
ID2LABEL = {0: "ham", 1: "spam"}
KINDS = ("ours", "gpt2_conv1d", "llama", "bert")
TEXTS = ["URGENT! You have won a 1 week FREE membership, call now", "ok see you at 6", "free prize txt"]


@pytest.fixture
def setup(request, tiny_gpt2_dir, tiny_llama_dir, tiny_bert_dir, gpt2_tokenizer_dir):
    """(ModelArguments, tokenizer) for one model kind: our GPT-2 (random weights) or a transformers one."""
    kind = request.param
    folder = {
        "ours": tiny_gpt2_dir,
        "gpt2_conv1d": tiny_gpt2_dir,
        "llama": tiny_llama_dir,
        "bert": tiny_bert_dir,
    }
    args = ModelArguments(
        model=str(folder[kind]),
        implementation="hf_spam" if kind == "ours" else "transformers",
        weights="random" if kind == "ours" else "pretrained",
        trainable="lora",
        dropout=0.0,
    )
    tokenizer = load_tokenizer(tiny_bert_dir if kind == "bert" else gpt2_tokenizer_dir)
    return args, tokenizer


def lora_model(setup, seed: int = 0, **lora: object):
    args, tokenizer = setup
    return build_adapter_classifier(
        args, ID2LABEL, tokenizer, AdapterArguments(lora_r=4, lora_alpha=8, **lora), seed
    )


def batch(tokenizer) -> dict[str, torch.Tensor]:
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")  # right-padded: pooling must use the mask
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def head_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if ".modules_to_save." in k}


all_kinds = pytest.mark.parametrize("setup", KINDS, indirect=True)


@all_kinds
def test_only_adapter_and_head_weights_change(setup):
    model, _ = lora_model(setup)
    inputs = batch(setup[1])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in k or ".modules_to_save." in k for k in trainable)
    assert any(".modules_to_save." in k for k in trainable)  # the head trains in full
    train_steps(model, inputs)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == trainable  # every adapter and head weight moved (B starts at zero)...
    frozen = set(before) - trainable
    assert any(".original_module." in k for k in frozen)  # peft keeps the initial head, frozen
    assert any("embed" in k or "wte" in k for k in frozen)
    for key in frozen:  # ...and every base weight, embeddings and the original head included, did not
        assert torch.equal(before[key], after[key]), key


@all_kinds
def test_targets_are_the_block_projections_never_the_head_or_embeddings(setup):
    args, tokenizer = setup
    base = build_classifier(args, ID2LABEL, tokenizer)
    config = lora_config(base, AdapterArguments())
    model, _ = lora_model(setup)
    wrapped = {name for name, m in model.named_modules() if hasattr(m, "lora_A")}
    kinds = {type(m.base_layer) for name, m in model.named_modules() if hasattr(m, "lora_A")}
    projections = {
        name for name, m in base.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D)) and ".0." in name
    }
    assert len(wrapped) == 2 * len(projections)  # every Linear/Conv1D of both blocks, nothing else
    assert not any("embed" in n or "wte" in n or "wpe" in n for n in wrapped)
    assert not any(n.split(".")[-1] in ("score", "classifier") or ".pooler." in n for n in wrapped)
    # peft's pitfall: transformers' GPT-2 Conv1D stores (in, out) and needs fan_in_fan_out; nn.Linear not
    assert config.fan_in_fan_out == (kinds == {Conv1D})
    if isinstance(base, GPT2Classifier):
        assert default_target_modules(base) == (
            r"transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)"
        )
        assert kinds == {torch.nn.Linear} and not config.fan_in_fan_out
    if args.implementation == "transformers" and base.config.model_type != "bert":
        assert model.config.pad_token_id == tokenizer.pad_token_id is not None  # decoders pool by it


@pytest.mark.parametrize("setup", ["ours", "gpt2_conv1d"], indirect=True)
def test_gpt2_conv1d_and_linear_are_told_apart(setup):
    args = setup[0]
    model, _ = lora_model(setup)
    layers = [m.base_layer for m in model.modules() if hasattr(m, "lora_A")]
    expected = torch.nn.Linear if args.implementation == "hf_spam" else Conv1D
    assert layers and all(type(layer) is expected for layer in layers)
    assert model.peft_config["default"].fan_in_fan_out == (expected is Conv1D)


@pytest.mark.parametrize("setup", ["ours"], indirect=True)
def test_head_in_targets_and_stray_flags_are_errors(setup):
    with pytest.raises(ValueError, match="head"):
        lora_model(setup, lora_targets=["c_attn", "score"])
    with pytest.raises(ValueError, match="match no module"):
        lora_model(setup, lora_targets=["q_proj"])
    model, _ = lora_model(setup, lora_targets=["c_attn"])
    assert sum(hasattr(m, "lora_A") for m in model.modules()) == 2  # one per block
    with pytest.raises(ValueError, match="--merge needs --trainable lora"):
        check_adapter_arguments(ModelArguments(trainable="all"), AdapterArguments(merge=True))


@all_kinds
def test_parameter_counts(setup):
    args, tokenizer = setup
    torch.manual_seed(0)
    base_total = parameter_counts(build_classifier(args, ID2LABEL, tokenizer))["total"]
    model, _ = lora_model(setup)
    params = dict(model.named_parameters())
    lora = sum(p.numel() for k, p in params.items() if "lora_" in k)
    head = sum(p.numel() for k, p in params.items() if ".modules_to_save." in k)
    assert parameter_counts(model) == {"trainable": lora + head, "total": base_total + lora}


@all_kinds
def test_save_load_round_trip_reproduces_the_logits(setup, tmp_path):
    model, record = lora_model(setup, seed=5)
    inputs = batch(setup[1])
    untrained = logits(model, inputs)
    train_steps(model, inputs)
    trained = logits(model, inputs)
    assert not torch.allclose(untrained, trained, atol=1e-4)
    no_lora = copy.deepcopy(model)
    for name, p in no_lora.named_parameters():
        if "lora_B" in name:
            p.data.zero_()
    assert not torch.allclose(logits(no_lora, inputs), trained, atol=1e-4)  # the adapter itself matters
    save_adapter_run(model, setup[1], tmp_path, record)
    torch.manual_seed(123)  # loading must not depend on the caller's random state
    loaded = load_classifier(tmp_path)
    reloaded_head = head_weights(loaded)
    assert reloaded_head.keys() == head_weights(model).keys()
    for key, value in head_weights(model).items():
        assert torch.equal(reloaded_head[key], value), key  # the trained head, not a fresh one
    assert torch.equal(logits(loaded, inputs), trained)
    adapter = load_file(tmp_path / "adapter_model.safetensors")
    assert sum(t.numel() for t in adapter.values()) == parameter_counts(model)["trainable"]


@pytest.mark.parametrize("setup", ["ours"], indirect=True)
def test_a_different_random_base_is_refused(setup, tmp_path):
    model, record = lora_model(setup, seed=5)
    save_adapter_run(model, setup[1], tmp_path, record)
    assert record["base_model_name_or_path"] is None and record["seed"] == 5
    saved = json.loads((tmp_path / ADAPTER_BASE_FILE).read_text())
    (tmp_path / ADAPTER_BASE_FILE).write_text(json.dumps({**saved, "seed": 6}))
    with pytest.raises(ValueError, match="not the one the adapter was trained on"):
        load_classifier(tmp_path)


@pytest.mark.parametrize("setup", ["ours", "gpt2_conv1d", "bert"], indirect=True)
def test_merged_and_unmerged_logits_agree(setup):
    model, _ = lora_model(setup)
    inputs = batch(setup[1])
    train_steps(model, inputs)
    with torch.no_grad():  # larger adapter weights, so a wrong merge (e.g. a transposed Conv1D) shows
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.3)
    unmerged = logits(model, inputs)
    merged = copy.deepcopy(model).merge_and_unload()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, inputs), unmerged, atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_gpt2_recipe_lora_merge_predict_pipeline(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path, capsys
):
    import transformers

    from hf_spam.serving.predict import Predictor

    metrics = recipe("gpt2_classifier").main([
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--run_name", "lora",
        "--max_train_samples", "32", "--max_eval_samples", "16", "--num_epochs", "1", "--eval_every", "0",
        "--learning_rate", "1e-3", "--trainable", "lora", "--lora_r", "8", "--merge",
    ])  # fmt: skip
    run_dir = tmp_path / "lora"
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        ADAPTER_BASE_FILE,
        "metrics.json",
        "tokenizer.json",
    ):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "model.safetensors").exists()
    adapter_config = json.loads((run_dir / "adapter_config.json").read_text())
    assert (adapter_config["r"], adapter_config["modules_to_save"]) == (8, ["score"])
    assert json.loads((run_dir / "args.json").read_text())["AdapterArguments"]["merge"] is True
    counts = json.loads((run_dir / "metrics.json").read_text())["parameters"]
    assert counts == metrics["parameters"] and 0 < counts["trainable"] < counts["total"] / 10
    adapter_bytes = (run_dir / "adapter_model.safetensors").stat().st_size
    full_bytes = (run_dir / "merged" / "model.safetensors").stat().st_size
    assert adapter_bytes < 0.05 * full_bytes  # r=8 on a 32-wide model; ~1.8 % for GPT-2 small at r=16

    # the PeftModel on its rebuilt base, at argmax (the pipeline knows no run threshold)
    unmerged = Predictor(run_dir, threshold=0.5)(TEXTS)
    pipe = transformers.pipeline("text-classification", model=str(run_dir / "merged"))
    for mine, theirs in zip(unmerged, pipe(TEXTS), strict=True):
        assert mine["label"] == theirs["label"]
        assert mine["probability"] == pytest.approx(theirs["score"], abs=1e-5)
    # the command on an existing run writes the same merged weights
    assert recipe("merge_lora").main(["--run", str(run_dir), "--output", str(tmp_path / "again")]) == str(
        tmp_path / "again"
    )
    first = load_file(run_dir / "merged" / "model.safetensors")
    again = load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    capsys.readouterr()
    recipe("predict").main(["--run", str(run_dir), *TEXTS])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["probabilities"] for line in lines] == [r["probabilities"] for r in unmerged]


def test_bert_recipe_lora_merged_folder_in_pipeline(tiny_bert_dir, sms_file, tmp_path):
    import transformers

    from hf_spam.serving.predict import Predictor

    metrics = recipe("bert_classifier").main([
        "--model", str(tiny_bert_dir), "--data_source", str(sms_file), "--output_dir", str(tmp_path),
        "--run_name", "bert", "--max_train_samples", "32", "--max_eval_samples", "16", "--num_epochs", "1",
        "--learning_rate", "1e-3", "--trainable", "lora", "--merge",
    ])  # fmt: skip
    run_dir = tmp_path / "bert"
    adapter_config = json.loads((run_dir / "adapter_config.json").read_text())
    assert adapter_config["task_type"] == "SEQ_CLS"
    assert adapter_config["base_model_name_or_path"] == str(tiny_bert_dir.resolve())
    assert {"classifier", "bert.pooler"} <= set(adapter_config["modules_to_save"])
    assert 0 < metrics["parameters"]["trainable"] < metrics["parameters"]["total"]
    merged = json.loads((run_dir / "merged" / "config.json").read_text())
    assert merged["architectures"] == ["BertForSequenceClassification"]
    assert (run_dir / "merged" / "operating_point.json").read_text() == (
        run_dir / "operating_point.json"
    ).read_text()
    pipe = transformers.pipeline("text-classification", model=str(run_dir / "merged"))
    for mine, theirs in zip(Predictor(run_dir, threshold=0.5)(TEXTS), pipe(TEXTS), strict=True):
        assert mine["label"] == theirs["label"]
        assert mine["probability"] == pytest.approx(theirs["score"], abs=1e-5)


def test_interrupted_lora_run_resumes_to_the_same_metrics(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    common = [
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--max_train_samples", "24",
        "--max_eval_samples", "8", "--num_epochs", "2", "--eval_every", "0", "--learning_rate", "1e-3",
        "--trainable", "lora",
    ]  # fmt: skip
    main = recipe("gpt2_classifier").main
    full = main([*common, "--run_name", "full"])
    main([*common, "--run_name", "cut", "--checkpoint_every", "2", "--max_steps", "4"])
    AcceleratorState._reset_state(reset_partial_state=True)
    resumed = main([*common, "--run_name", "cut", "--resume_from_checkpoint", "latest"])
    assert resumed["splits"] == full["splits"]
    assert (
        resumed["training"]["details"]["optimizer_steps"]
        == full["training"]["details"]["optimizer_steps"]
        == 6
    )
