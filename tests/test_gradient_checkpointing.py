"""``--gradient_checkpointing``: the same loss and gradients, with the trained blocks really recomputed."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from helpers import recipe
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from hf_spam import GPT2Config
from hf_spam.models.adapters import AdapterArguments, apply_adapter
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.gradient_checkpointing import enable_gradient_checkpointing, is_gradient_checkpointing
from hf_spam.models.trainable import model_parts, set_trainable

VOCAB = 100


def ours() -> torch.nn.Module:
    config = GPT2Config(vocab_size=VOCAB, context_length=32, emb_dim=32, n_layers=3, n_heads=2, dropout=0.1)
    return GPT2Classifier(config, num_labels=2)


def llama() -> torch.nn.Module:
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
                         attention_dropout=0.1)  # fmt: skip
    return LlamaForSequenceClassification(config)


def bert() -> torch.nn.Module:  # dropout 0.1 on hidden states and attention, as BERT's default
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64)  # fmt: skip
    return BertForSequenceClassification(config)


def block_runs(model: torch.nn.Module) -> dict[int, int]:
    """Count each block's executions: a pre-hook on the block's first Linear also sees the recomputation
    (transformers checkpoints a layer's forward, inside the module hooks of the block itself)."""
    runs: dict[int, int] = {}
    for i, block in enumerate(model_parts(model)[0]):
        first = next(m for m in block.modules() if isinstance(m, torch.nn.Linear))
        first.register_forward_pre_hook(lambda module, args, i=i: runs.__setitem__(i, runs.get(i, 0) + 1))
    return runs


def loss_and_grads(model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    ids = torch.randint(1, VOCAB, (4, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    model.train()
    torch.manual_seed(1)  # the same dropout masks in both models
    logits = model(input_ids=ids, attention_mask=mask).logits
    loss = F.cross_entropy(logits, torch.tensor([0, 1, 1, 0]))
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("build", [ours, llama, bert], ids=["our_gpt2", "llama", "bert"])
@pytest.mark.parametrize("policy", ["all", "last_block"])
def test_same_loss_and_gradients_with_the_trained_blocks_recomputed(build, policy):
    torch.manual_seed(0)
    plain = build()
    set_trainable(plain, policy)
    checkpointed = enable_gradient_checkpointing(copy.deepcopy(plain))
    assert is_gradient_checkpointing(checkpointed) and not is_gradient_checkpointing(plain)
    runs = block_runs(checkpointed)
    loss, grads = loss_and_grads(plain)
    loss_ckpt, grads_ckpt = loss_and_grads(checkpointed)
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=1e-6)
    assert sorted(grads_ckpt) == sorted(grads) and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=0, atol=1e-6)
    # each trained block ran twice (forward, then recomputed in backward); frozen blocks below once
    expected = {0: 2, 1: 2, 2: 2} if policy == "all" else {0: 1, 1: 1, 2: 2}
    assert runs == expected


def test_lora_adapters_checkpointed_give_the_same_gradients():
    torch.manual_seed(0)
    plain = apply_adapter(ours(), "lora", AdapterArguments(lora_r=4, lora_alpha=8))
    checkpointed = enable_gradient_checkpointing(copy.deepcopy(plain))
    runs = block_runs(checkpointed.get_base_model())
    (loss, grads), (loss_ckpt, grads_ckpt) = loss_and_grads(plain), loss_and_grads(checkpointed)
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=1e-6)
    assert any("lora_A" in name for name in grads) and sorted(grads_ckpt) == sorted(grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=0, atol=1e-6)
    assert runs == {0: 2, 1: 2, 2: 2}  # the frozen base's blocks hold trained adapters: all recomputed


def test_no_recomputation_in_evaluation_or_without_gradients():
    model = enable_gradient_checkpointing(ours())
    runs = block_runs(model)
    ids = torch.randint(1, VOCAB, (2, 8))
    with torch.no_grad():
        model.train()(input_ids=ids)
    model.eval()(input_ids=ids).logits.sum().backward()
    assert runs == {0: 2, 1: 2, 2: 2}  # two forwards, no recomputation


def test_a_model_that_cannot_checkpoint_is_one_line():
    class NoCheckpoints(torch.nn.Module):
        supports_gradient_checkpointing = False

    with pytest.raises(ValueError, match="--gradient_checkpointing: NoCheckpoints does not support"):
        enable_gradient_checkpointing(NoCheckpoints())


def test_the_flag_with_the_frozen_prefix_cache_trains_the_same(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    """The cache feeds the frozen blocks and checkpointing recomputes the trained one: neither disturbs the
    other (the cache's capture runs without gradients; cached blocks are never recomputed)."""
    args = [
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--max_train_samples", "24",
        "--max_eval_samples", "8", "--num_epochs", "1", "--trainable", "last_block", "--save_model", "false",
        "--eval_every", "0",
    ]  # fmt: skip
    gpt2 = recipe("gpt2_classifier")
    plain = gpt2.main([*args, "--run_name", "plain"])
    checkpointed = gpt2.main([*args, "--run_name", "checkpointed", "--gradient_checkpointing"])
    details = checkpointed["training"]["details"]
    assert details["gradient_checkpointing"] and details["frozen_prefix_cache"]["used"]
    for split, found in checkpointed["splits"].items():
        assert found["loss"] == pytest.approx(plain["splits"][split]["loss"], abs=1e-6)
        assert found["confusion_matrix"] == plain["splits"][split]["confusion_matrix"]
    history = [json.loads((tmp_path / run / "history.json").read_text()) for run in ("plain", "checkpointed")]
    assert history[1][-1]["train_loss"] == pytest.approx(history[0][-1]["train_loss"], abs=1e-6)
