"""The ONNX export (torch.onnx.export + onnxruntime): logits equal torch's, served by the Predictor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import recipe

from hf_spam import GPT2Config
from hf_spam.arguments import ModelArguments
from hf_spam.data.tokenizer import load_tokenizer
from hf_spam.models.adapters import AdapterArguments, build_adapter_classifier, save_adapter_run
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.load import load_classifier
from hf_spam.run_folder import ONNX_DIR, ONNX_EXPORT_FILE, ONNX_MODEL, ONNX_QUANTIZED
from hf_spam.serving import Predictor
from hf_spam.serving.onnx_export import TOLERANCE, export_onnx

pytest.importorskip("onnxruntime", reason='the ONNX tests need onnxruntime: pip install -e ".[onnx]"')

ID2LABEL = {0: "ham", 1: "spam"}
LONG = " ".join(f"free prize {i} call now to claim" for i in range(12))
TEXTS = ["ok", LONG, "URGENT! You have won a 1 week FREE membership, call now", "see you at 6", "hi there"]


def redraw(model: torch.nn.Module, std: float = 0.2) -> torch.nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


@pytest.fixture(params=["gpt2", "gpt2_mean", "bert"])
def classifier_dir(request, gpt2_tokenizer, tiny_bert_dir, tmp_path) -> Path:
    """Our GPT-2 classifier (last-token or mean pooling) or a transformers BERT, saved as a run saves it."""
    if request.param == "bert":
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_bert_dir, num_labels=2, id2label=ID2LABEL
        )
        redraw(model).save_pretrained(tmp_path)
        load_tokenizer(tiny_bert_dir).save_pretrained(tmp_path)
        return tmp_path
    config = GPT2Config(emb_dim=32, n_layers=2, n_heads=2, context_length=64, dropout=0.0)
    pooling = "mean" if request.param == "gpt2_mean" else "last"
    redraw(GPT2Classifier(config, 2, pooling, ID2LABEL)).save_pretrained(tmp_path)
    gpt2_tokenizer.save_pretrained(tmp_path)
    return tmp_path


def window_logits(predictor: Predictor) -> torch.Tensor:
    return predictor.window_logits([w for t in TEXTS for w in predictor.windows(t)[0]])


def test_exported_logits_equal_torch(classifier_dir):
    record = export_onnx(classifier_dir, quantize=True)
    assert record["checked"]["max_abs_logit_difference"] <= TOLERANCE
    assert len(record["checked"]["batches"]) == 4  # both padding sides, one short text, one long window
    saved = json.loads((classifier_dir / ONNX_DIR / ONNX_EXPORT_FILE).read_text())
    assert (
        saved["files"] == {"float32": ONNX_MODEL, "int8": ONNX_QUANTIZED} and saved["id2label"]["1"] == "spam"
    )
    assert record["int8"]["bytes"] < record["int8"]["float32_bytes"]

    torch_predictor = Predictor(classifier_dir, device="cpu", max_length=32, max_batch_tokens=64)
    onnx_predictor = Predictor(classifier_dir, max_length=32, max_batch_tokens=64, backend="onnxruntime")
    assert onnx_predictor.model is None and onnx_predictor.id2label == ID2LABEL
    ours, theirs = window_logits(torch_predictor), window_logits(onnx_predictor)
    assert len(ours) > len(TEXTS)  # LONG is read in several windows, batched beside the others
    torch.testing.assert_close(theirs, ours, atol=TOLERANCE, rtol=0)
    assert [r["label"] for r in onnx_predictor(TEXTS)] == [r["label"] for r in torch_predictor(TEXTS)]
    int8 = Predictor(classifier_dir, max_length=32, backend="onnxruntime", quantize="int8")
    assert int8.probabilities(TEXTS).shape == (len(TEXTS), 2)


def test_lora_run_exports_merged_and_matches_its_peft_model(tiny_gpt2_dir, gpt2_tokenizer_dir, tmp_path):
    args = ModelArguments(model=str(tiny_gpt2_dir), implementation="hf_spam", weights="random",
                          trainable="lora", dropout=0.0)  # fmt: skip
    tokenizer = load_tokenizer(gpt2_tokenizer_dir)
    model, record = build_adapter_classifier(args, ID2LABEL, tokenizer, AdapterArguments(lora_r=4), 7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)
    save_adapter_run(model, tokenizer, tmp_path, record)
    printed = recipe("export_onnx").main(["--run", str(tmp_path)])
    assert printed["adapter_merged"] and printed["model"] == "GPT2Classifier"
    assert (tmp_path / ONNX_DIR / ONNX_MODEL).is_file() and not (
        tmp_path / ONNX_DIR / ONNX_QUANTIZED
    ).exists()
    onnx_predictor = Predictor(tmp_path, backend="onnxruntime")
    inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        peft_logits = load_classifier(tmp_path)(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        )
    theirs = onnx_predictor.backend.logits(inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(theirs, peft_logits.logits, atol=TOLERANCE, rtol=0)


def test_conv1d_layers_become_equal_linear_layers_for_int8(tiny_gpt2_dir, gpt2_tokenizer):
    """transformers' GPT-2 keeps (in, out) Conv1D weights, which quantize_dynamic skips: they are turned into
    nn.Linear first, with the same outputs."""
    from transformers import GPT2ForSequenceClassification
    from transformers.pytorch_utils import Conv1D

    from hf_spam.serving.backends import conv1d_to_linear

    model = redraw(
        GPT2ForSequenceClassification.from_pretrained(tiny_gpt2_dir, num_labels=2, pad_token_id=50256)
    )
    inputs = gpt2_tokenizer(TEXTS[2:], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**inputs).logits
        conv1d_to_linear(model)
        after = model(**inputs).logits
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
