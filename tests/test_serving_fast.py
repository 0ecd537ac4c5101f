"""The Predictor's fast path: sorted, token-budgeted batches; adapters merged in memory; int8 and its cost."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from helpers import recipe

from hf_spam import GPT2Config
from hf_spam.arguments import ModelArguments
from hf_spam.data.tokenizer import load_tokenizer
from hf_spam.models.adapters import AdapterArguments, build_adapter_classifier, save_adapter_run
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.load import load_classifier
from hf_spam.run_folder import SERVING_ACCURACY_FILE
from hf_spam.serving import Predictor, ServingArguments
from hf_spam.serving.accuracy import measure_serving_accuracy
from hf_spam.serving.batching import token_budget_batches

ID2LABEL = {0: "ham", 1: "spam"}
LONG = " ".join(f"free prize {i} call now to claim" for i in range(6))
TEXTS = [
    "ok",
    LONG,  # several windows of 16 tokens
    "URGENT! You have won a 1 week FREE membership in our £100,000 prize jackpot, call now",
    "see you at 6",
    "free prize txt claim now",
    "i am on my way home",
    LONG[:70],
    "call me",
]


def redraw(model: torch.nn.Module, std: float = 0.2, seed: int = 1) -> torch.nn.Module:
    """Weights far from the default init, so a wrong position, mask or merge shows in the logits."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def bert_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """A tiny BERT classifier folder (random head, redrawn weights), as a run saves it."""
    from transformers import AutoModelForSequenceClassification

    path = tmp_path_factory.mktemp("bert-classifier")
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=2, id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()}
    )
    redraw(model).save_pretrained(path)
    load_tokenizer(tiny_bert_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["right", "left"])
def gpt2_dir(request, gpt2_tokenizer, tmp_path_factory) -> Path:
    """Our GPT-2 classifier folder, its tokenizer padding on one side."""
    path = tmp_path_factory.mktemp(f"gpt2-classifier-{request.param}")
    config = GPT2Config(emb_dim=32, n_layers=2, n_heads=2, context_length=64, dropout=0.0)
    redraw(GPT2Classifier(config, 2, "last", ID2LABEL)).save_pretrained(path)
    tokenizer = copy.deepcopy(gpt2_tokenizer)
    tokenizer.padding_side = request.param
    tokenizer.save_pretrained(path)
    return path


def test_token_budget_batches_hold_every_index_once_within_the_budget():
    random.seed(0)
    lengths = [random.randint(1, 120) for _ in range(500)] + [300]  # one longer than the budget
    batches = token_budget_batches(lengths, max_batch_tokens=256, max_rows=16)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 256
        assert len(batch) <= 16 and lengths[batch[0]] == longest
    assert batches[0] == [500]  # the longest first, alone
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)
    # sorting pads little: under 10 % of the padded tokens are padding here
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.1 * sum(lengths)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        token_budget_batches(lengths, 0)


def one_at_a_time(predictor: Predictor, texts: list[str]) -> torch.Tensor:
    return torch.cat([predictor.probabilities([t], batch_size=1) for t in texts])


@pytest.mark.parametrize("long_text", ["chunks", "head_tail", "truncate"])
def test_sorted_budgeted_batches_equal_one_at_a_time_in_input_order(bert_dir, long_text):
    predictor = Predictor(bert_dir, device="cpu", max_length=16, long_text=long_text, max_batch_tokens=48)
    windows = [w for t in TEXTS for w in predictor.windows(t)[0]]
    batches = token_budget_batches([len(w) for w in windows], 48)
    assert 1 < len(batches) < len(windows) and any(len(b) > 1 for b in batches)  # batches mix texts
    expected = one_at_a_time(predictor, TEXTS)
    torch.testing.assert_close(predictor.probabilities(TEXTS), expected, atol=1e-5, rtol=1e-5)
    results = predictor(list(reversed(TEXTS)))  # put back in input order, whatever that order is
    assert [r["probabilities"]["spam"] for r in results] == pytest.approx(
        expected[:, 1].flip(0).tolist(), abs=1e-5
    )
    assert results[-2]["chunks"] == (3 if long_text == "chunks" else 1)  # LONG


def test_decoder_batches_equal_one_at_a_time_on_either_padding_side(gpt2_dir):
    predictor = Predictor(gpt2_dir, device="cpu", max_length=16, max_batch_tokens=64)
    expected = one_at_a_time(predictor, TEXTS)
    torch.testing.assert_close(predictor.probabilities(TEXTS), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(predictor.probabilities(TEXTS, batch_size=3), expected, atol=1e-5, rtol=1e-5)


@pytest.fixture(params=[("ours", "lora"), ("bert", "lora"), ("ours", "ia3"), ("bert", "ia3")])
def lora_run(request, tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir, tmp_path) -> Path:
    """A saved run folder of an adapter that merges (LoRA or (IA)^3; our GPT-2 on a random base, or a
    transformers BERT) whose adapter and head are far from their start, so that merging wrongly would show."""
    kind, method = request.param
    ours = kind == "ours"
    args = ModelArguments(model=str(tiny_gpt2_dir if ours else tiny_bert_dir), trainable=method, dropout=0.0,
                          implementation="hf_spam" if ours else "transformers",
                          weights="random" if ours else "pretrained")  # fmt: skip
    tokenizer = load_tokenizer(gpt2_tokenizer_dir if ours else tiny_bert_dir)
    adapter = AdapterArguments(lora_r=4, lora_alpha=8) if method == "lora" else AdapterArguments()
    model, record = build_adapter_classifier(args, ID2LABEL, tokenizer, adapter, 3)
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name or "ia3_l" in name or "modules_to_save" in name:
                p.normal_(1.0 if "ia3_l" in name else 0.0, 0.3)
    save_adapter_run(model, tokenizer, tmp_path, record)
    return tmp_path


def test_lora_run_is_served_merged_equal_to_the_peft_model_and_the_folder_is_untouched(lora_run):
    before = folder_digest(lora_run)
    predictor = Predictor(lora_run, device="cpu", threshold=0.5, max_batch_tokens=64)
    assert not any(hasattr(m, "base_layer") for m in predictor.model.modules())  # merged: no adapter layer
    unmerged = load_classifier(lora_run)
    assert any(hasattr(m, "base_layer") for m in unmerged.modules())
    inputs = predictor.tokenizer(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
    inputs = {k: inputs[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        theirs, ours = unmerged(**inputs).logits, predictor.model(**inputs).logits
        plain_base = unmerged.get_base_model()  # the adapter off: the logits must differ
        with unmerged.disable_adapter():
            base = plain_base(**inputs).logits
    assert not torch.allclose(base, theirs, atol=1e-3)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert folder_digest(lora_run) == before  # merging happened in memory only


def test_prompt_learning_adapters_are_served_unmerged(tiny_bert_dir):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from hf_spam.serving.backends import merge_adapter

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    model = get_peft_model(base, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4))
    assert merge_adapter(model) is model


@pytest.fixture(scope="module")
def trained_run(tiny_bert_dir, sms_file, tmp_path_factory) -> Path:
    """A tiny BERT fine-tuned on real SMS data for a few seconds: confident enough that int8 rarely flips a
    label, with args.json to rebuild its test split from."""
    out = tmp_path_factory.mktemp("serving_runs")
    recipe("bert_classifier").main([
        "--model", str(tiny_bert_dir), "--data_source", str(sms_file), "--output_dir", str(out),
        "--run_name", "tiny", "--max_train_samples", "128", "--max_eval_samples", "100", "--num_epochs", "2",
        "--learning_rate", "3e-3", "--batch_size", "16", "--eval_every", "0",
    ])  # fmt: skip
    AcceleratorState._reset_state(reset_partial_state=True)
    return out / "tiny"


@pytest.mark.slow  # trains a tiny run (~20 s on a quiet 2-core CPU)
def test_int8_agrees_with_float32_and_its_accuracy_change_is_recorded(trained_run, capsys):
    from hf_spam.serving.accuracy import run_test_split

    texts, labels, names = run_test_split(trained_run)
    assert len(texts) == 100 and names == ["ham", "spam"]
    fp32 = Predictor(trained_run, device="cpu")
    int8 = Predictor(trained_run, device="cpu", quantize="int8")
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in int8.model.modules())
    a, b = fp32.probabilities(texts), int8.probabilities(texts)
    assert not torch.equal(a, b)  # quantisation changed the numbers...
    agreement = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    assert agreement >= 0.98, agreement  # ...but not the labels

    entry = measure_serving_accuracy(trained_run, ServingArguments(quantize="int8", device="cpu"))
    metrics = json.loads((trained_run / "metrics.json").read_text())
    threshold = metrics["operating_point"]["threshold"]
    expected = ((a[:, 1] >= threshold).long() == torch.tensor(labels)).float().mean().item()
    assert entry["float32_accuracy"] == pytest.approx(expected)
    assert entry["delta_points"] == pytest.approx(
        100 * (entry["accuracy"] - entry["float32_accuracy"]), abs=1e-3
    )
    assert entry["n"] == 100 and entry["agreement"] >= 0.98
    saved = json.loads((trained_run / SERVING_ACCURACY_FILE).read_text())
    assert saved["torch-int8"] == json.loads(json.dumps(entry))

    # the command: measured on a subset, the entry replaced, then the texts classified with int8
    argv = ["--quantize", "int8", "--measure_accuracy", "--max_test_samples", "50", "--device", "cpu"]
    recipe("predict").main(["--run", str(trained_run), *argv, "free prize now", "ok"])
    first, *lines = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["serving_accuracy"] == "torch-int8" and first["n"] == 50
    assert json.loads((trained_run / SERVING_ACCURACY_FILE).read_text())["torch-int8"]["n"] == 50
    assert [line["text"] for line in lines] == ["free prize now", "ok"]


def test_serving_mistakes_are_one_line_before_loading(bert_dir, capsys):
    with pytest.raises(ValueError, match="float16 is for a GPU"):
        Predictor(bert_dir, device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="CPU quantisation"):
        Predictor(bert_dir, device="cuda", quantize="int8")
    with pytest.raises(ValueError, match="--max_batch_tokens 0"):
        Predictor(bert_dir, device="cpu", max_batch_tokens=0)
    with pytest.raises(FileNotFoundError, match=r"export_onnx\.py --run"):
        Predictor(bert_dir, device="cpu", backend="onnxruntime")
    predict = recipe("predict")
    assert predict.cli.__module__ == "hf_spam.commands.predict"
    for argv, message in (
        (["--quantize", "int4"], "invalid choice"),
        (["--threshold", "2"], "--threshold 2.0: a probability"),
        (["--backend", "onnxruntime", "--dtype", "bfloat16"], "--dtype bfloat16 is for the torch backend"),
        (["--max_test_samples", "5"], "needs --measure_accuracy"),
    ):
        with pytest.raises(ValueError, match=message):
            predict.main(["--run", str(bert_dir), *argv, "hi"])


class LengthScorer:
    """A whole-text run kind as the Predictor sees it: class names and per-text logits."""

    id2label = ID2LABEL

    def logits(self, texts: list[str], text_pairs: list[str] | None = None) -> torch.Tensor:
        return torch.tensor([[2.0, len(t) / 4] for t in texts])  # long texts are spam

    def describe(self, texts: list[str], text_pairs: list[str] | None = None) -> list[dict]:
        return [{"long_text": "whole", "tokens": len(t), "chunks": 1, "truncated": False} for t in texts]


def test_a_whole_text_scorer_plugs_in_beside_the_fast_path(bert_dir):
    predictor = Predictor(bert_dir, device="cpu", temperature=2.0)
    predictor.scorer = LengthScorer()
    results = predictor(["ok", "free prize now"])
    expected = torch.softmax(LengthScorer().logits(["ok", "free prize now"]) / 2.0, -1)
    assert [r["probabilities"]["spam"] for r in results] == pytest.approx(expected[:, 1].tolist())
    assert [r["label"] for r in results] == ["ham", "spam"] and results[0]["chunks"] == 1
