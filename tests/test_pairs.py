"""Sentence pairs (``--text_pair_column``): both texts reach the model -- BERT through its pair encoding and
segment ids (tokenising, the collator, the trainer's forward, the Predictor), decoders and TF-IDF as the two
texts joined -- and a missing pair column is a one-line error naming it."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from helpers import recipe
from transformers import BertModel

from hf_spam.arguments import DataArguments
from hf_spam.data import PAIR_COLUMN, PAIR_SEPARATOR, PaddingCollator, load_splits, load_text_file, tokenize
from hf_spam.data.tokenizer import load_tokenizer
from hf_spam.errors import DataError
from hf_spam.frozen_features.arguments import FeatureArguments
from hf_spam.frozen_features.run import run_frozen_features
from hf_spam.run_folder import PREDICTIONS_FILE
from hf_spam.serving.app import build_app, classify
from hf_spam.serving.predict import Predictor
from hf_spam.study.results import read_predictions

FIRST = ["the mobile is in", "a call to me", "i and you now", "the txt is", "you and me", "ok the mobile"]
SPAM = ["free prize now", "win a free prize", "claim your prize", "urgent claim now", "win free"]
HAM = ["ok i am in", "you and me", "the call is ok", "me to you", "i am ok"]


def write_pairs(path: Path, n: int = 120, seed: int = 0) -> Path:
    """A csv of sentence pairs (columns sentence1, sentence2, label) whose label the SECOND text alone
    decides: the first texts are drawn from one pool for both classes."""
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        for i in range(n):
            label = i % 2
            writer.writerow([rng.choice(FIRST), rng.choice(SPAM if label else HAM), label])
    return path


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs.csv")


def pair_args(path: Path, **changes) -> DataArguments:
    settings = {"text_column": "sentence1", "text_pair_column": "sentence2", "protocol": "stratified"}
    return DataArguments(dataset=str(path), **(settings | changes))


def test_a_pair_file_loads_both_texts_and_a_missing_pair_column_is_one_line_naming_it(pairs_file, tmp_path):
    data = load_text_file(pairs_file, text_column="sentence1", text_pair_column="sentence2")
    assert data.column_names == ["text", "label", PAIR_COLUMN]
    with pairs_file.open() as f:
        first = next(csv.DictReader(f))
    assert (data[0]["text"], data[0][PAIR_COLUMN]) == (first["sentence1"], first["sentence2"])
    splits, _ = load_splits(pair_args(pairs_file), seed=1)
    assert all(PAIR_COLUMN in part.column_names for part in splits.values())
    with pytest.raises(DataError) as error:
        load_splits(pair_args(pairs_file, text_pair_column="question2"), seed=1)
    message = str(error.value)
    assert "\n" not in message and str(pairs_file) in message and "missing column 'question2'" in message
    assert "['sentence1', 'sentence2', 'label']" in message  # the columns that exist
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"text": "a", "label": 0}\n')
    with pytest.raises(DataError, match=r"missing column 'text_b'") as error:
        load_text_file(jsonl, text_pair_column="text_b")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="--text_pair_column is for file datasets"):
        DataArguments(dataset="sms_spam", text_pair_column="x")


def test_bert_reads_a_pair_with_its_segment_ids_and_gpt2_reads_the_texts_joined(
    pairs_file, tiny_bert_dir, gpt2_tokenizer
):
    splits, _ = load_splits(pair_args(pairs_file), seed=1)
    part = splits["train"].select(range(4))
    bert = load_tokenizer(tiny_bert_dir)
    tokens = tokenize(part, bert)
    for row, text, pair in zip(tokens, part["text"], part[PAIR_COLUMN], strict=True):
        expected = bert(text, pair)
        assert row["input_ids"] == expected["input_ids"]
        segments = row["token_type_ids"]
        assert segments == expected["token_type_ids"] and 0 in segments and 1 in segments
        second = row["input_ids"].index(bert.sep_token_id) + 1  # the second text starts after [SEP]
        assert set(segments[:second]) == {0} and set(segments[second:]) == {1}
    batch = PaddingCollator(bert)([dict(row) for row in tokens])
    assert batch["token_type_ids"].shape == batch["input_ids"].shape  # the collator keeps them
    gpt2 = tokenize(part, gpt2_tokenizer)
    assert "token_type_ids" not in gpt2.column_names
    joined = [f"{t}{PAIR_SEPARATOR}{p}" for t, p in zip(part["text"], part[PAIR_COLUMN], strict=True)]
    assert gpt2["input_ids"] == gpt2_tokenizer(joined)["input_ids"]


def test_pairs_train_bert_with_segment_ids_and_the_predictor_reads_them_alike(
    pairs_file, tiny_bert_dir, tmp_path, monkeypatch, capsys
):
    seen: list[torch.Tensor | None] = []  # the segment ids of every forward pass of the BERT body
    forward = BertModel.forward

    def recording(self, *args, **kwargs):
        seen.append(kwargs.get("token_type_ids"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(BertModel, "forward", recording)
    data = ["--dataset", str(pairs_file), "--text_column", "sentence1", "--text_pair_column", "sentence2",
            "--protocol", "stratified"]  # fmt: skip
    metrics = recipe("bert_classifier").main([
        "--model", str(tiny_bert_dir), *data, "--output_dir", str(tmp_path), "--run_name", "pairs",
        "--num_epochs", "3", "--batch_size", "8", "--learning_rate", "3e-3", "--eval_every", "0",
    ])  # fmt: skip
    AcceleratorState._reset_state(reset_partial_state=True)
    assert seen and all(ids is not None and ids.max() == 1 for ids in seen)  # training and evaluation
    assert metrics["training"]["details"]["text_pairs"] == {
        "column": "sentence2",
        "read_as": "pair encoding with segment ids",
    }
    run = tmp_path / "pairs"
    assert json.loads((run / "args.json").read_text())["DataArguments"]["text_pair_column"] == "sentence2"
    test = load_splits(pair_args(pairs_file), seed=123)[0]["test"]
    predictor = Predictor(run, device="cpu", threshold=0.5)
    seen.clear()
    probabilities = predictor.probabilities(test["text"], text_pairs=test[PAIR_COLUMN])
    assert all(ids is not None and ids.max() == 1 for ids in seen)
    saved = np.loadtxt(run / PREDICTIONS_FILE, delimiter=",", skiprows=1, usecols=(3, 4))
    np.testing.assert_allclose(probabilities.numpy(), saved, atol=1e-5)  # as the run's own evaluation
    with pytest.raises(ValueError, match=r"this run reads sentence pairs \(--text_pair_column sentence2\)"):
        predictor(["one text alone"])
    # the command line (--pairs: two texts separated by a tab) and the app take pairs too
    capsys.readouterr()
    recipe("predict").main(["--run", str(run), "--pairs", f"{test['text'][0]}\t{test[PAIR_COLUMN][0]}"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["text_pair"] == test[PAIR_COLUMN][0]
    assert printed["probabilities"]["1"] == pytest.approx(float(probabilities[0, 1]), abs=1e-5)
    label, _, how = classify(predictor, test["text"][0], printed["threshold"], test[PAIR_COLUMN][0])
    assert label == printed["label"] and "tokens" in how
    assert classify(predictor, "a first text", 0.5)[2] == "type or paste a message and its pair"
    assert build_app(run, predictor=predictor) is not None


def test_tfidf_reads_both_texts_of_a_pair(pairs_file, tmp_path):
    # the label is in the second text alone: without it TF-IDF is at chance, with it the task is easy
    args = FeatureArguments(method="tfidf", analyzer="word", output_dir=str(tmp_path), run_name="pairs")
    metrics = run_frozen_features(args, pair_args(pairs_file))
    assert metrics["splits"]["test"]["accuracy"] == 1.0
    assert metrics["training"]["details"]["text_pairs"] == {
        "column": "sentence2",
        "read_as": "joined by '\\n'",
    }
    labels, predicted = read_predictions(tmp_path / "pairs" / PREDICTIONS_FILE)
    assert len(labels) == metrics["splits"]["test"]["n"] and (labels == predicted).all()
    first_only = FeatureArguments(method="tfidf", analyzer="word", output_dir=str(tmp_path), run_name="first")
    single = DataArguments(dataset=str(pairs_file), text_column="sentence1", protocol="stratified")
    assert run_frozen_features(first_only, single)["splits"]["test"]["accuracy"] < 0.8
