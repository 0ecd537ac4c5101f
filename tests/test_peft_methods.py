"""The PEFT family beside LoRA — (IA)^3, prompt tuning, P-tuning, prefix tuning — on our GPT-2, a tiny
Llama with grouped-query attention (4 heads, 2 key/value heads) and a tiny BERT.

As peft's own custom-model tests: only the method's weights and the head move; a save/load round trip
reproduces the logits, checked after asserting the adapter changed them. And what peft's prompt methods
get wrong by themselves: a text must predict the same alone, in a right-padded batch and in a left-padded
one.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from accelerate.state import AcceleratorState
from helpers import REPO, logits, recipe, train_steps

from hf_spam.arguments import ModelArguments
from hf_spam.data.tokenizer import load_tokenizer
from hf_spam.models.adapters import (
    DEFAULT_LEARNING_RATES,
    AdapterArguments,
    build_adapter_classifier,
    check_adapter_arguments,
)
from hf_spam.models.adapters.run import prepare_base, save_adapter_run
from hf_spam.models.build import build_classifier
from hf_spam.models.load import load_classifier
from hf_spam.models.trainable import parameter_counts
from hf_spam.training.prefix_cache import plan_cache

ID2LABEL = {0: "ham", 1: "spam"}
KINDS = ("ours", "llama", "bert")
METHODS = ("lora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning")
TEXTS = ["URGENT! You have won a 1 week FREE membership, call now", "ok see you at 6", "free prize txt"]
SMALL = {"lora": {"lora_r": 4, "lora_alpha": 8}, "prompt_tuning": {"num_virtual_tokens": 4},
         "p_tuning": {"num_virtual_tokens": 4, "encoder_hidden_size": 8},
         "prefix_tuning": {"num_virtual_tokens": 4}}  # fmt: skip
# the names of each method's own trainable weights in a peft model
OWN_WEIGHTS = {"lora": "lora_", "ia3": "ia3_l", "prompt_tuning": "prompt_encoder",
               "p_tuning": "prompt_encoder", "prefix_tuning": "prompt_encoder"}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def folders(tiny_gpt2_dir, tiny_llama_dir, tiny_bert_dir, gpt2_tokenizer_dir):
    return {"ours": tiny_gpt2_dir, "llama": tiny_llama_dir, "bert": tiny_bert_dir,
            "gpt2_tokenizer": gpt2_tokenizer_dir}  # fmt: skip


def model_args(folders, kind: str, method: str) -> ModelArguments:
    return ModelArguments(
        model=str(folders[kind]), implementation="hf_spam" if kind == "ours" else "transformers",
        weights="random" if kind == "ours" else "pretrained", trainable=method, dropout=0.0,
    )  # fmt: skip


def tokenizer_of(folders, kind: str):
    return load_tokenizer(folders["bert" if kind == "bert" else "gpt2_tokenizer"])


def adapter_model(folders, kind: str, method: str, seed: int = 0):
    args = model_args(folders, kind, method)
    adapter = AdapterArguments(**SMALL.get(method, {}))
    return build_adapter_classifier(args, ID2LABEL, tokenizer_of(folders, kind), adapter, seed)


def encode(tokenizer, texts: list[str], side: str) -> dict[str, torch.Tensor]:
    batch = tokenizer(texts, padding=True, padding_side=side, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


every = pytest.mark.parametrize(("kind", "method"), [(k, m) for k in KINDS for m in METHODS])


@every
def test_only_the_method_and_the_head_change(folders, kind, method):
    model, _ = adapter_model(folders, kind, method)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert any(OWN_WEIGHTS[method] in k for k in trainable), sorted(trainable)
    assert any(".modules_to_save." in k for k in trainable)  # the head trains in full, saved with it
    assert all(OWN_WEIGHTS[method] in k or ".modules_to_save." in k for k in trainable), sorted(trainable)
    train_steps(model, encode(tokenizer_of(folders, kind), TEXTS, "right"))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= trainable
    assert any(OWN_WEIGHTS[method] in k for k in changed)  # the method itself learned
    for key in set(before) - trainable:  # every base weight, embeddings included, stayed
        assert torch.equal(before[key], after[key]), key


@every
def test_save_and_load_reproduce_the_logits(folders, kind, method, tmp_path):
    model, record = adapter_model(folders, kind, method, seed=5)
    tokenizer = tokenizer_of(folders, kind)
    inputs = encode(tokenizer, TEXTS, "right")
    torch.manual_seed(5)
    plain = prepare_base(build_classifier(model_args(folders, kind, method), ID2LABEL, tokenizer), method)
    train_steps(model, inputs)
    trained = logits(model, inputs)
    assert not torch.allclose(logits(plain.eval(), inputs), trained, atol=1e-4)  # the adapter matters
    save_adapter_run(model, tokenizer, tmp_path, record)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == model.peft_type.value
    torch.manual_seed(123)  # loading must not depend on the caller's random state
    torch.testing.assert_close(logits(load_classifier(tmp_path), inputs), trained, atol=1e-6, rtol=0)


@every
def test_a_text_predicts_the_same_alone_and_in_batches_padded_either_side(folders, kind, method):
    model, _ = adapter_model(folders, kind, method)
    tokenizer = tokenizer_of(folders, kind)
    train_steps(model, encode(tokenizer, TEXTS, "right"))  # LoRA's B starts at 0 and (IA)^3 at 1: move them
    alone = torch.cat([logits(model, encode(tokenizer, [text], "right")) for text in TEXTS])
    for side in ("right", "left"):
        torch.testing.assert_close(logits(model, encode(tokenizer, TEXTS, side)), alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["ours", "llama"])
def test_prompt_tuning_pools_the_last_real_token_of_a_right_padded_row(folders, kind):
    """peft issue 764: given embeddings, a decoder classifier reads the last position — a pad here."""
    from peft import PromptTuningConfig, get_peft_model

    tokenizer = tokenizer_of(folders, kind)
    ours, _ = adapter_model(folders, kind, "prompt_tuning")
    base = build_classifier(model_args(folders, kind, "prompt_tuning"), ID2LABEL, tokenizer)
    base = base.to_transformers() if kind == "ours" else base  # peft alone, without hf_spam's input fixes
    bare = get_peft_model(base, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4)).eval()
    bare.load_state_dict(ours.state_dict(), strict=False)  # the same prompt and head
    short = TEXTS[1]
    alone = logits(ours, encode(tokenizer, [short], "right"))
    padded = encode(tokenizer, TEXTS, "right")
    assert padded["attention_mask"][1, -1] == 0  # the short text's row ends in pads
    torch.testing.assert_close(logits(ours, padded)[1:2], alone, atol=1e-5, rtol=0)
    assert not torch.allclose(logits(bare, padded)[1:2], alone, atol=1e-3)  # peft alone reads a pad


@pytest.mark.parametrize("kind", KINDS)
def test_ia3_merged_equals_unmerged(folders, kind):
    model, _ = adapter_model(folders, kind, "ia3")
    inputs = encode(tokenizer_of(folders, kind), TEXTS, "right")
    train_steps(model, inputs)
    unmerged = logits(model, inputs)
    merged = copy.deepcopy(model).merge_and_unload()
    assert not any("ia3_" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, inputs), unmerged, atol=1e-5, rtol=0)


def test_flags_of_another_method_and_merging_a_prompt_are_one_line_errors():
    for method in ("prompt_tuning", "p_tuning", "prefix_tuning"):
        with pytest.raises(ValueError, match="--merge needs --trainable lora or ia3"):
            check_adapter_arguments(ModelArguments(trainable=method), AdapterArguments(merge=True))
    with pytest.raises(ValueError, match="--num_virtual_tokens needs --trainable prompt_tuning or p_tuning"):
        check_adapter_arguments(ModelArguments(trainable="lora"), AdapterArguments(num_virtual_tokens=8))
    with pytest.raises(ValueError, match="--lora_r needs --trainable lora"):
        check_adapter_arguments(ModelArguments(trainable="ia3"), AdapterArguments(lora_r=4))
    with pytest.raises(ValueError, match="--pooling first"):
        check_adapter_arguments(
            ModelArguments(trainable="prompt_tuning", pooling="first"), AdapterArguments()
        )
    with pytest.raises(ValueError, match="--prompt_init text needs --prompt_init_text"):
        AdapterArguments(prompt_init="text")
    check_adapter_arguments(ModelArguments(trainable="ia3"), AdapterArguments(merge=True))  # fine


def test_prompt_init_text_starts_from_the_texts_embeddings(folders):
    args = model_args(folders, "llama", "prompt_tuning")
    tokenizer = tokenizer_of(folders, "llama")
    adapter = AdapterArguments(num_virtual_tokens=5, prompt_init="text", prompt_init_text="spam or ham")
    model, _ = build_adapter_classifier(args, ID2LABEL, tokenizer, adapter, seed=0)
    ids = tokenizer("spam or ham", add_special_tokens=False)["input_ids"]
    expected = model.get_base_model().get_input_embeddings().weight[(ids * 5)[:5]]
    torch.testing.assert_close(model.prompt_encoder["default"].embedding.weight, expected)


@pytest.mark.parametrize("method", ["prompt_tuning", "p_tuning", "prefix_tuning"])
def test_the_frozen_prefix_cache_refuses_prompt_methods_and_serves_top_ia3(folders, method):
    plan = plan_cache(adapter_model(folders, "llama", method)[0])
    assert not plan.eligible and method in plan.reason
    args = model_args(folders, "llama", "ia3")
    top, _ = build_adapter_classifier(
        args, ID2LABEL, tokenizer_of(folders, "llama"), AdapterArguments(ia3_layers=1), seed=0
    )
    assert plan_cache(top).depth == 1  # the tiny Llama's 2 blocks: block 0 frozen, cached
    assert all(".layers.1." in n for n, p in top.named_parameters() if p.requires_grad and "ia3_" in n)


@pytest.mark.parametrize("method", ["ia3", "prompt_tuning"])
def test_autopeft_loads_a_transformers_based_adapter_as_it_is(folders, method, tmp_path):
    from peft import AutoPeftModelForSequenceClassification

    model, record = adapter_model(folders, "bert", method)
    tokenizer = tokenizer_of(folders, "bert")
    train_steps(model, encode(tokenizer, TEXTS, "right"))
    save_adapter_run(model, tokenizer, tmp_path, record)
    loaded = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path).eval()
    for text in TEXTS:  # one text at a time: peft's own forward, no padding
        inputs = encode(tokenizer, [text], "right")
        torch.testing.assert_close(logits(loaded, inputs), logits(model, inputs), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_gpt2_recipe_trains_prompt_tuning_end_to_end(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path):
    from hf_spam.serving import Predictor

    argv = [
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--run_name", "prompt",
        "--trainable", "prompt_tuning", "--num_virtual_tokens", "4", "--max_train_samples", "32",
        "--max_eval_samples", "16", "--num_epochs", "1", "--eval_every", "2",
    ]  # fmt: skip
    metrics = recipe("gpt2_classifier").main(argv)
    run = tmp_path / "prompt"
    args = json.loads((run / "args.json").read_text())
    assert args["TrainArguments"]["learning_rate"] == 1e-3  # prompt tuning's own default, recorded
    assert args["AdapterArguments"]["num_virtual_tokens"] == 4
    adapter = metrics["training"]["details"]["adapter"]
    assert adapter["method"] == "prompt_tuning"
    assert adapter["megabytes"] == pytest.approx((run / "adapter_model.safetensors").stat().st_size / 2**20)
    counts = metrics["parameters"]
    assert 0 < counts["trainable"] < counts["total"]
    assert metrics["training"]["details"]["frozen_prefix_cache"]["used"] is False
    predictions = Predictor(run, threshold=0.5, temperature=1.0).probabilities(["free prize", "see you"])
    assert predictions.shape == (2, 2)
    assert parameter_counts(load_classifier(run))["trainable"] == 0  # loaded for inference: frozen


def test_docs_give_each_method_s_default_learning_rate_as_the_code_does():
    lines = (REPO / "docs" / "peft.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("| default `--learning_rate` |"))
    table = lines[start : lines.index("", start)]  # the methods' table, up to its blank line
    for method, rate in DEFAULT_LEARNING_RATES.items():
        (line,) = [line for line in table if line.startswith(f"| `{method}` |")]
        documented = line.rstrip(" |").rsplit("|", 1)[1].split()[0]
        assert float(documented) == rate, (method, documented, rate)
