"""Classification head: pooling under padding, trainable policies, export to transformers."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from hf_spam import GPT2Config
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.gpt2.weights import config_to_transformers
from hf_spam.models.load import load_classifier
from hf_spam.models.remote.modeling_hf_spam import pool
from hf_spam.models.trainable import set_trainable

CONFIG = GPT2Config(vocab_size=120, context_length=32, emb_dim=24, n_layers=3, n_heads=2, dropout=0.0)


def classifier(pooling: str = "last", causal: bool = True, seed: int = 0) -> GPT2Classifier:
    torch.manual_seed(seed)
    model = GPT2Classifier(GPT2Config(**{**CONFIG.to_dict(), "causal": causal}), 3, pooling).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def padded(rows: list[list[int]], side: str, pad: int = 119) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids, mask = [], []
    for row in rows:
        fill = [pad] * (width - len(row))
        ids.append(row + fill if side == "right" else fill + row)
        mask.append([1] * len(row) + [0] * len(fill) if side == "right" else [0] * len(fill) + [1] * len(row))
    return torch.tensor(ids), torch.tensor(mask)


ROWS = [[5, 17, 33, 2, 9, 11, 40], [7, 3], [60, 61, 62, 63]]


@pytest.mark.parametrize("pooling", ["last", "first", "mean"])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("causal", [True, False])
@torch.no_grad()
def test_pooling_matches_batch_of_one(pooling, side, causal):
    model = classifier(pooling, causal)
    ids, mask = padded(ROWS, side)
    batched = model(input_ids=ids, attention_mask=mask).logits
    assert batched.shape == (3, 3)
    for i, row in enumerate(ROWS):
        alone = model(input_ids=torch.tensor([row])).logits[0]
        torch.testing.assert_close(batched[i], alone, atol=1e-5, rtol=1e-5)


def test_last_pooling_is_not_the_book_slice_on_right_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert pool(hidden, mask, "last").flatten().tolist() == [1.0, 7.0]  # the book's [:, -1] reads 3.0 (a pad)
    assert pool(hidden, mask, "first").flatten().tolist() == [0.0, 4.0]
    assert pool(hidden, mask, "mean").flatten().tolist() == [0.5, 5.5]
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, left, "first").flatten().tolist() == [2.0, 4.0]


@pytest.mark.parametrize("policy", ["all", "last_block", "last_two_blocks", "head"])
def test_trainable_policies_count_parameters(policy):
    model = classifier()
    counts = set_trainable(model, policy)
    total = sum(p.numel() for p in model.parameters())
    block = sum(p.numel() for p in model.transformer.h[0].parameters())
    head, ln_f = CONFIG.emb_dim * 3, 2 * CONFIG.emb_dim
    expected = {
        "all": total,
        "head": head,
        "last_block": head + ln_f + block,
        "last_two_blocks": head + ln_f + 2 * block,
    }
    assert counts == {"trainable": expected[policy], "total": total}
    last = CONFIG.n_layers - 1
    groups = {
        "score"
        if n.startswith("score.")
        else ".".join(n.split(".")[:3])
        if ".h." in n
        else n.rsplit(".", 1)[0]
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    wanted = {
        "head": {"score"},
        "last_block": {"score", "transformer.ln_f", f"transformer.h.{last}"},
        "last_two_blocks": {
            "score",
            "transformer.ln_f",
            f"transformer.h.{last}",
            f"transformer.h.{last - 1}",
        },
    }
    if policy in wanted:
        assert groups == wanted[policy]
        assert not model.transformer.wte.weight.requires_grad


def tiny_transformers_models():
    gpt2 = GPT2ForSequenceClassification(config_to_transformers(CONFIG))
    llama = LlamaForSequenceClassification(
        LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                    num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    )  # fmt: skip
    bert = BertForSequenceClassification(
        BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
        )
    )
    return {"gpt2": gpt2, "llama": llama, "bert": bert}


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
def test_trainable_policies_on_transformers_models(name):
    model = tiny_transformers_models()[name]
    prefixes = {
        "gpt2": ("transformer.h.2.", "transformer.ln_f.", "score."),
        "llama": ("model.layers.2.", "model.norm.", "score."),
        "bert": ("bert.encoder.layer.2.", "bert.pooler.", "classifier."),
    }[name]
    set_trainable(model, "last_block")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    for prefix in prefixes:  # each named part is trained, and nothing else
        assert any(n.startswith(prefix) for n in trainable), prefix
    assert all(n.startswith(prefixes) for n in trainable)
    set_trainable(model, "head")
    head = [n for n, p in model.named_parameters() if p.requires_grad]
    head_prefixes = (prefixes[-1], "bert.pooler.") if name == "bert" else (prefixes[-1],)
    assert head and all(n.startswith(head_prefixes) for n in head)


@torch.no_grad()
def test_export_to_transformers_and_pipeline_agree(tmp_path, gpt2_tokenizer):
    torch.manual_seed(0)
    model = GPT2Classifier(
        GPT2Config(emb_dim=32, n_layers=2, n_heads=2, context_length=64), 2, "last", {0: "ham", 1: "spam"}
    ).eval()
    with torch.no_grad():
        model.score.weight.normal_(0.0, 2.0)
    model.save_pretrained(tmp_path)
    gpt2_tokenizer.save_pretrained(tmp_path)
    texts = ["Free entry in 2 a wkly comp to win FA Cup final tkts", "Ok lar... Joking wif u oni...", "hi"]
    batch = gpt2_tokenizer(texts, padding=True, return_tensors="pt")
    ours = torch.softmax(model(**batch).logits, -1)

    exported = load_classifier(tmp_path)
    assert isinstance(exported, GPT2Classifier)  # our own class comes back
    torch.testing.assert_close(torch.softmax(exported(**batch).logits, -1), ours)

    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(theirs, GPT2ForSequenceClassification)
    torch.testing.assert_close(torch.softmax(theirs(**batch).logits, -1), ours, atol=1e-5, rtol=1e-5)

    pipe = transformers.pipeline("text-classification", model=str(tmp_path), top_k=None)
    for text, scores, probs in zip(texts, pipe(texts), ours, strict=True):
        by_label = {s["label"]: s["score"] for s in scores}
        assert by_label == pytest.approx({"ham": probs[0].item(), "spam": probs[1].item()}, abs=1e-5), text


def test_classifier_cannot_generate():
    with pytest.raises(TypeError, match="no LM head"):
        classifier().generate(torch.tensor([[1, 2]]), 3)


@torch.no_grad()
def test_causal_switch_on_a_transformers_decoder(tmp_path, gpt2_tokenizer):
    from transformers import LlamaForCausalLM

    from hf_spam.arguments import ModelArguments
    from hf_spam.models.build import build_classifier

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    labels = {0: "ham", 1: "spam"}

    def build(causal: bool):
        args = ModelArguments(model=str(tmp_path), implementation="transformers", causal=causal)
        torch.manual_seed(1)  # the same fresh head both times
        return build_classifier(args, labels, gpt2_tokenizer).eval()

    causal, bidirectional = build(True), build(False)
    ids = torch.randint(0, 50257, (2, 9), generator=torch.Generator().manual_seed(0))
    full = torch.ones(2, 1, 9, 9, dtype=torch.bool)  # every token sees every token
    assert causal.config.pad_token_id == gpt2_tokenizer.pad_token_id
    torch.testing.assert_close(bidirectional(ids).logits, causal(ids, attention_mask=full).logits)
    assert not torch.allclose(bidirectional(ids).logits, causal(ids).logits)


def test_pooling_flag_is_refused_for_transformers_models(tmp_path, gpt2_tokenizer):
    from hf_spam.arguments import ModelArguments
    from hf_spam.models.build import build_classifier

    args = ModelArguments(model=str(tmp_path), implementation="transformers", pooling="mean")
    with pytest.raises(ValueError, match="--pooling mean needs --implementation hf_spam"):
        build_classifier(args, {0: "a", 1: "b"}, gpt2_tokenizer)


@pytest.mark.parametrize("pooling", ["last", "first"])
@pytest.mark.parametrize("side", ["right", "left", "none"])
@pytest.mark.parametrize("causal", [True, False])
def test_pooled_row_only_last_block_equals_full_model(pooling, side, causal):
    """forward computes only the pooled position in the last block: same logits and gradients as the
    full-sequence path (all blocks on every token, then pool), with padding on either side or none."""
    model = classifier(pooling, causal).train()  # dropout is 0: training mode is deterministic
    if side == "none":
        ids, mask = torch.tensor([[5, 6, 7, 8, 9], [1, 2, 3, 4, 10]]), None
    else:
        ids, mask = padded([[5, 6, 7, 8, 9], [1, 2, 3]], side)
    results = []
    for full in (False, True):
        model.zero_grad()
        if full:
            logits = model.score(pool(model.hidden_states(ids, mask), mask, pooling))
        else:
            logits = model(ids, attention_mask=mask).logits
        logits.square().sum().backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (fast, fast_grads), (full, full_grads) = results
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-6)
    assert fast_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(fast_grads[name], full_grads[name], atol=1e-6, rtol=1e-6, msg=name)
