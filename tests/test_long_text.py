"""Texts longer than the model's context: truncate, head_tail and chunks, never silently."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from hf_spam.serving.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
LONG = " ".join(f"free prize {i} call now to claim" for i in range(6))  # 42 tokens of the tiny vocabulary
SHORT = "ok see you"
WINDOW = 16  # tokens per window, [CLS] and [SEP] included: 14 of text


@pytest.fixture(scope="module")
def classifier_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """A (random-headed) tiny BERT classifier folder, as a run saves it."""
    from transformers import AutoModelForSequenceClassification

    from hf_spam.data.tokenizer import load_tokenizer

    path = tmp_path_factory.mktemp("tiny-bert-classifier")
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1}
    )
    model.save_pretrained(path)
    load_tokenizer(tiny_bert_dir).save_pretrained(path)
    return path


def model_probabilities(predictor: Predictor, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = predictor.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids))).logits
    return torch.softmax(logits, -1)[0]


def test_chunks_average_the_windows_weighted_by_their_tokens(classifier_dir):
    predictor = Predictor(classifier_dir, device="cpu", max_length=WINDOW, long_text="chunks")
    # the windows are those of the tokenizer's own overflow (stride 0), special tokens in each
    overflow = predictor.tokenizer(LONG, truncation=True, max_length=WINDOW, return_overflowing_tokens=True)
    windows, tokens = predictor.windows(LONG)
    assert windows == overflow["input_ids"] and len(windows) == 3
    assert tokens == len(predictor.tokenizer(LONG, verbose=False)["input_ids"])
    weights = torch.tensor([len(w) - 2 for w in windows], dtype=torch.float32)
    per_window = torch.stack([model_probabilities(predictor, w) for w in windows])
    expected = (per_window * weights[:, None]).sum(0) / weights.sum()
    result = predictor([LONG, SHORT], batch_size=3)[0]  # windows of two texts share batches
    assert [result["probabilities"][k] for k in ("ham", "spam")] == pytest.approx(expected.tolist(), abs=1e-6)
    assert (result["long_text"], result["chunks"], result["tokens"], result["truncated"]) == (
        "chunks", len(windows), tokens, False
    )  # fmt: skip


def test_truncate_is_the_pipelines_truncation_and_says_so(classifier_dir):
    import transformers

    predictor = Predictor(classifier_dir, device="cpu", max_length=WINDOW, long_text="truncate",
                          threshold=0.5)  # fmt: skip
    result = predictor([LONG])[0]
    pipe = transformers.pipeline("text-classification", model=str(classifier_dir), top_k=None)
    theirs = {s["label"]: s["score"] for s in pipe([LONG], truncation=True, max_length=WINDOW)[0]}
    assert result["probabilities"] == pytest.approx(theirs, abs=1e-6)
    assert result["truncated"] and result["chunks"] == 1 and result["tokens"] > WINDOW


def test_head_tail_keeps_the_start_and_the_end(classifier_dir):
    predictor = Predictor(classifier_dir, device="cpu", max_length=WINDOW, long_text="head_tail")
    body = predictor.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    (window,), _ = predictor.windows(LONG)
    cls, sep = predictor.tokenizer.cls_token_id, predictor.tokenizer.sep_token_id
    assert window == [cls, *body[:3], *body[-11:], sep]  # a quarter of the 14 text tokens, then the end
    assert predictor([LONG])[0]["truncated"]


def test_short_texts_read_the_same_in_every_mode(classifier_dir):
    results = [
        Predictor(classifier_dir, device="cpu", max_length=WINDOW, long_text=mode)([SHORT])[0]
        for mode in ("truncate", "head_tail", "chunks")
    ]
    assert all(r["probabilities"] == results[0]["probabilities"] for r in results)
    assert all(r["chunks"] == 1 and not r["truncated"] for r in results)
    with pytest.raises(ValueError, match="long_text"):
        Predictor(classifier_dir, device="cpu", long_text="middle")


def test_predict_recipe_states_the_mode_in_each_line(classifier_dir, capsys):
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        predict = __import__("predict")
    finally:
        sys.path.pop(0)
    predict.main(["--run", str(classifier_dir), "--max_length", str(WINDOW), LONG, SHORT])
    long_line, short_line = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert long_line["long_text"] == short_line["long_text"] == "chunks"  # the default, in the output
    assert long_line["chunks"] > 1 and short_line["chunks"] == 1
    assert long_line["threshold"] is None and long_line["temperature"] == 1.0  # no operating_point.json
