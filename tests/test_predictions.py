"""Predictions that do not depend on the batch, and saved classifiers that load only as what they are."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import transformers
from transformers import AutoModelForSequenceClassification, LlamaConfig, LlamaForCausalLM

from hf_spam import GPT2Config
from hf_spam.arguments import ModelArguments
from hf_spam.models.build import build_classifier
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.load import load_classifier
from hf_spam.serving.predict import Predictor

LABELS = {0: "ham", 1: "spam", 2: "other"}
TEXTS = [
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005",
    "Ok lar...",
    "Even my brother is not like to speak with me.",
    "hi",
]


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
    """A tiny Llama-family decoder folder (RoPE positions) with GPT-2's vocabulary size."""
    path = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def redrawn(model: torch.nn.Module) -> torch.nn.Module:
    """Weights from N(0, 0.3): large enough that a shifted position changes the logits visibly."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def batch_vs_alone(model, tokenizer, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(TEXTS, padding=True, padding_side=side, return_tensors="pt")
    assert not bool(batch["attention_mask"].all())  # the batch really is padded
    with torch.no_grad():
        batched = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        alone = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in TEXTS])
    return batched, alone


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("decoder", ["gpt2", "llama"])
def test_transformers_decoder_batch_equals_one_at_a_time(
    decoder, side, tiny_gpt2_dir, tiny_llama_dir, gpt2_tokenizer, tmp_path
):
    """``--implementation transformers``: positions count from each row's first real token.

    GPT-2's absolute positions shift under left padding unless the position ids come from the attention
    mask (transformers' classifier forward uses ``arange(T)``); Llama's RoPE is relative and must stay exact.
    The same holds after save and reload (``load_classifier``) and through ``Predictor``.
    """
    folder = {"gpt2": tiny_gpt2_dir, "llama": tiny_llama_dir}[decoder]
    args = ModelArguments(model=str(folder), implementation="transformers")
    model = redrawn(build_classifier(args, LABELS, gpt2_tokenizer))
    batched, alone = batch_vs_alone(model, gpt2_tokenizer, side)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)

    model.save_pretrained(tmp_path)
    tokenizer = copy.deepcopy(gpt2_tokenizer)
    tokenizer.padding_side = side  # Predictor pads as the saved tokenizer says
    tokenizer.save_pretrained(tmp_path)
    batched, alone = batch_vs_alone(load_classifier(tmp_path), gpt2_tokenizer, side)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    predictor = Predictor(tmp_path, device="cpu")
    torch.testing.assert_close(
        predictor.probabilities(TEXTS, batch_size=4),
        predictor.probabilities(TEXTS, batch_size=1),
        atol=1e-5,
        rtol=1e-5,
    )


def test_encoders_read_a_left_padded_row_as_the_row_alone(tiny_bert_dir):
    """BERT pools column 0 (``[CLS]``), where left padding puts a pad: the recipes' BERT moves each row's
    pads after its tokens, so a left-padded batch predicts what each text predicts alone; right-padded
    batches are transformers' own, untouched."""
    from hf_spam.data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tiny_bert_dir)
    args = ModelArguments(model=str(tiny_bert_dir), implementation="transformers")
    model = redrawn(build_classifier(args, LABELS, tokenizer))
    plain = AutoModelForSequenceClassification.from_config(model.config).eval()
    plain.load_state_dict(model.state_dict())
    texts = ["free prize now", "ok"]
    with torch.no_grad():
        alone = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in texts])
        right = tokenizer(texts, padding=True, padding_side="right", return_tensors="pt")
        torch.testing.assert_close(model(**right).logits, plain(**right).logits)
        torch.testing.assert_close(model(**right).logits, alone, atol=1e-5, rtol=0)
        left = tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
        torch.testing.assert_close(model(**left).logits, alone, atol=1e-5, rtol=0)
        assert not torch.allclose(plain(**left).logits[1], alone[1], atol=1e-3)  # transformers reads a pad


def gpt2_classifier(pooling: str, causal: bool = True) -> GPT2Classifier:
    config = GPT2Config(emb_dim=32, n_layers=2, n_heads=2, context_length=64, dropout=0.0, causal=causal)
    return redrawn(GPT2Classifier(config, 3, pooling, LABELS))


def probabilities(model, tokenizer, side: str = "right") -> torch.Tensor:
    batch = tokenizer(TEXTS, padding=True, padding_side=side, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(model(**batch).logits, -1)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_first_and_mean_pooling_never_load_as_last_token_pooling(pooling, tmp_path, gpt2_tokenizer):
    """A ``first``/``mean`` classifier is saved with its pooling code: transformers refuses it without
    ``trust_remote_code`` (instead of pooling the last token) and reproduces our predictions with it."""
    model = gpt2_classifier(pooling)
    model.save_pretrained(tmp_path)
    gpt2_tokenizer.save_pretrained(tmp_path)
    ours = probabilities(model, gpt2_tokenizer)
    last = gpt2_classifier("last")
    last.load_state_dict(model.state_dict())
    assert not torch.allclose(probabilities(last, gpt2_tokenizer), ours, atol=1e-3)  # pooling matters here

    with pytest.raises(ValueError, match="trust_remote_code=True"):
        transformers.pipeline("text-classification", model=str(tmp_path))
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path)

    theirs = AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=True).eval()
    assert theirs.config.pooling == pooling
    for side in ("right", "left"):
        torch.testing.assert_close(probabilities(theirs, gpt2_tokenizer, side), ours, atol=1e-5, rtol=1e-5)
    pipe = transformers.pipeline(
        "text-classification", model=str(tmp_path), trust_remote_code=True, top_k=None
    )
    for scores, probs in zip(pipe(TEXTS, batch_size=4), ours, strict=True):
        by_label = {s["label"]: s["score"] for s in scores}
        assert by_label == pytest.approx({LABELS[i]: p.item() for i, p in enumerate(probs)}, abs=1e-5)
    assert isinstance(load_classifier(tmp_path), GPT2Classifier)  # hf_spam needs no flag


def test_last_pooling_still_saves_as_plain_gpt2(tmp_path, gpt2_tokenizer):
    """``last`` pooling is transformers' own: a plain GPT2ForSequenceClassification folder, no code in it."""
    model = gpt2_classifier("last")
    model.save_pretrained(tmp_path)
    gpt2_tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and "auto_map" not in config
    assert config["architectures"] == ["GPT2ForSequenceClassification"]
    assert not list(tmp_path.glob("*.py"))
    pipe = transformers.pipeline("text-classification", model=str(tmp_path), top_k=None)
    for scores, probs in zip(pipe(TEXTS), probabilities(model, gpt2_tokenizer), strict=True):
        by_label = {s["label"]: s["score"] for s in scores}
        assert by_label == pytest.approx({LABELS[i]: p.item() for i, p in enumerate(probs)}, abs=1e-5)


@pytest.mark.parametrize(
    ("pooling", "causal"), [("first", True), ("mean", True), ("last", False), ("mean", False)]
)
def test_reload_keeps_pooling_and_causal_mask(pooling, causal, tmp_path, gpt2_tokenizer):
    """Save then ``load_classifier``: the same class, pooling, mask and logits (left and right padding)."""
    model = gpt2_classifier(pooling, causal)
    model.save_pretrained(tmp_path)
    reloaded = load_classifier(tmp_path)
    assert isinstance(reloaded, GPT2Classifier)
    assert (reloaded.pooling, reloaded.config.causal, reloaded.id2label) == (pooling, causal, LABELS)
    for side in ("right", "left"):
        torch.testing.assert_close(
            probabilities(reloaded, gpt2_tokenizer, side), probabilities(model, gpt2_tokenizer, side)
        )
    other = gpt2_classifier(pooling, not causal)  # the saved flags matter: the other mask predicts otherwise
    other.load_state_dict(model.state_dict())
    assert not torch.allclose(probabilities(other, gpt2_tokenizer), probabilities(model, gpt2_tokenizer))
