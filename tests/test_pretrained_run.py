"""A pretrained GPT-2 from a saved folder becomes the classifier's body: before training and in the run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from transformers import GPT2LMHeadModel

from hf_spam import GPT2Config
from hf_spam.arguments import ModelArguments
from hf_spam.models.build import build_classifier
from hf_spam.models.gpt2.weights import config_to_transformers
from hf_spam.models.load import load_classifier

REPO = Path(__file__).resolve().parents[1]
TINY = GPT2Config(emb_dim=32, n_layers=2, n_heads=2, context_length=128, dropout=0.0)


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def saved_gpt2(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny GPT2LMHeadModel written by ``save_pretrained``, with weights far from any fresh init."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config_to_transformers(TINY))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.save_pretrained(tmp_path / "gpt2-folder")
    body = {k: v.clone() for k, v in model.transformer.state_dict().items() if not k.endswith("attn.bias")}
    return tmp_path / "gpt2-folder", body


def assert_body_equals(classifier, body: dict[str, torch.Tensor]) -> None:
    """Our classifier's ``transformer.*`` weights are exactly transformers' (Conv1D weights transposed)."""
    ours = {k.removeprefix("transformer."): v for k, v in classifier.state_dict().items()}
    assert set(body) <= set(ours)
    for key, theirs in body.items():
        conv1d = key.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))
        assert torch.equal(ours[key], theirs.t() if conv1d else theirs), key


def run_recipe(argv: list[str]) -> dict:
    spec = importlib.util.spec_from_file_location("gpt2_classifier", REPO / "recipes" / "gpt2_classifier.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe.main(argv)


def test_pretrained_folder_becomes_the_classifier_body(
    saved_gpt2, gpt2_tokenizer, gpt2_tokenizer_dir, sms_file, tmp_path
):
    folder, body = saved_gpt2
    labels = {0: "ham", 1: "spam"}
    before = build_classifier(ModelArguments(model=str(folder), weights="pretrained"), labels, gpt2_tokenizer)
    assert_body_equals(before, body)  # before training: the saved weights, not a fresh init
    random = build_classifier(ModelArguments(model=str(folder), weights="random"), labels, gpt2_tokenizer)
    with pytest.raises(AssertionError):
        assert_body_equals(random, body)  # the check tells the two apart

    metrics = run_recipe([
        "--model", str(folder), "--weights", "pretrained", "--trainable", "head", "--tokenizer",
        str(gpt2_tokenizer_dir), "--data_source", str(sms_file), "--output_dir", str(tmp_path / "runs"),
        "--run_name", "pretrained", "--max_train_samples", "16", "--max_eval_samples", "8",
        "--num_epochs", "1", "--eval_every", "0", "--learning_rate", "1e-2",
    ])  # fmt: skip
    assert metrics["training"]["details"]["optimizer_steps"] > 0
    assert metrics["parameters"]["trainable"] == TINY.emb_dim * len(labels)  # the head alone learned
    trained = load_classifier(tmp_path / "runs" / "pretrained")
    assert_body_equals(trained, body)  # frozen body: still exactly the folder's weights after the run
