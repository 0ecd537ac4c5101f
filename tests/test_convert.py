"""Loading GPT-2 weights from every kind of source, strictly; sizes; tokenizer; offline errors."""

from __future__ import annotations

import time

import pytest
import torch
from transformers import GPT2LMHeadModel, GPT2Model

from hf_spam import GPT2, GPT2Config, load_tokenizer
from hf_spam.errors import WeightsError
from hf_spam.hub import OfflineError
from hf_spam.models.gpt2 import GPT2_SIZES
from hf_spam.models.gpt2.weights import config_to_transformers

CONFIG = GPT2Config(vocab_size=211, context_length=48, emb_dim=64, n_layers=2, n_heads=4, dropout=0.0)


@pytest.fixture(scope="module")
def hf_model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config_to_transformers(CONFIG)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.3)
    return model


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, CONFIG.vocab_size, (2, 11), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def test_load_from_save_pretrained_folder(hf_model, ids, tmp_path):
    hf_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    ours = GPT2.from_pretrained(tmp_path).eval()
    assert ours.config == CONFIG  # read from config.json
    torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_load_from_bin_folder(hf_model, ids, tmp_path):
    hf_model.config.save_pretrained(tmp_path)
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    ours = GPT2.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_load_from_unprefixed_state_dict_with_mask_buffers(hf_model, ids):
    base = GPT2Model(hf_model.config)
    base.load_state_dict(hf_model.transformer.state_dict())
    state = dict(base.state_dict())
    assert not any(k.startswith("transformer.") for k in state)
    # old hub checkpoints carry the causal-mask buffers; they are dropped, not loaded
    state["h.0.attn.bias"] = torch.ones(1, 1, 48, 48)
    state["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    ours = GPT2.from_pretrained(state, config=CONFIG).eval()
    torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=1e-5, rtol=1e-5)
    # and from the GPT2Model module itself
    torch.testing.assert_close(GPT2.from_pretrained(base).eval()(ids), ours(ids), atol=0, rtol=0)


def test_config_inferred_from_standard_shapes():
    with torch.device("meta"):
        hf = GPT2Model(config_to_transformers(GPT2Config.from_name("gpt2-medium", n_layers=2)))
    model = GPT2.from_pretrained({k: torch.zeros(v.shape) for k, v in hf.state_dict().items()})
    assert (model.config.emb_dim, model.config.n_heads, model.config.n_layers) == (1024, 16, 2)


def test_missing_key_is_named(hf_model):
    state = dict(hf_model.state_dict())
    del state["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(WeightsError, match=r"missing keys: \['transformer\.h\.1\.mlp\.c_fc\.bias'\]"):
        GPT2.from_pretrained(state, config=CONFIG)


def test_shape_mismatch_is_named(hf_model):
    state = dict(hf_model.state_dict())
    state["transformer.h.0.attn.c_proj.weight"] = torch.zeros(64, 32)
    with pytest.raises(WeightsError, match=r"transformer\.h\.0\.attn\.c_proj\.weight: checkpoint \(32, 64\)"):
        GPT2.from_pretrained(state, config=CONFIG)


def test_unexpected_key_is_named(hf_model):
    state = dict(hf_model.state_dict())
    state["transformer.h.0.attn.q_attn.weight"] = torch.zeros(64, 64)
    with pytest.raises(WeightsError, match=r"unexpected keys: \['transformer\.h\.0\.attn\.q_attn\.weight'\]"):
        GPT2.from_pretrained(state, config=CONFIG)


def test_untied_head_is_refused(hf_model):
    state = {k: v.clone() for k, v in hf_model.state_dict().items()}
    state["lm_head.weight"] = torch.zeros_like(state["lm_head.weight"])
    with pytest.raises(WeightsError, match=r"lm_head\.weight"):
        GPT2.from_pretrained(state, config=CONFIG)


def test_weights_are_tied_after_loading(hf_model):
    ours = GPT2.from_pretrained(hf_model)
    assert ours.lm_head.weight is ours.transformer.wte.weight


@pytest.mark.parametrize("size", sorted(GPT2_SIZES))
def test_parameter_counts_equal_transformers(size):
    config = GPT2Config.from_name(size)
    with torch.device("meta"):
        ours = GPT2(config)
        theirs = GPT2LMHeadModel(config_to_transformers(config))
    assert ours.num_parameters() == theirs.num_parameters()
    assert (config.emb_dim, config.n_layers, config.n_heads) == (
        theirs.config.n_embd,
        theirs.config.n_layer,
        theirs.config.n_head,
    )
    if size == "gpt2":
        assert ours.num_parameters() == 124_439_808


def test_size_names_and_hub_prefix():
    assert GPT2Config.from_name("openai-community/gpt2-xl") == GPT2Config(
        emb_dim=1600, n_layers=48, n_heads=25
    )
    with pytest.raises(ValueError, match="unknown GPT-2 size"):
        GPT2Config.from_name("gpt3")


def test_random_weights_need_no_download():
    model = GPT2.from_config("gpt2", n_layers=1)
    assert model.config.emb_dim == 768 and model.config.n_layers == 1
    std = model.transformer.wte.weight.std().item()
    assert 0.018 < std < 0.022  # GPT-2 init N(0, 0.02)


def test_hub_id_with_no_network_fails_fast_naming_alternatives(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(OfflineError, match=r"(?s)local folder.*random weights"):
        GPT2.from_pretrained("openai-community/gpt2")
    assert time.monotonic() - start < 30  # no minute of hub retries
    with pytest.raises(OfflineError, match="gpt2-tokenizer"):
        load_tokenizer("gpt2")


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        GPT2.from_pretrained(str(tmp_path / "no-such-folder"))


def test_real_tokenizer_from_original_files(gpt2_tokenizer):
    assert gpt2_tokenizer.encode("Do you have time") == [5211, 345, 423, 640]
    assert len(gpt2_tokenizer) == 50257
    assert gpt2_tokenizer.pad_token_id == gpt2_tokenizer.eos_token_id == 50256
    assert gpt2_tokenizer.is_fast
