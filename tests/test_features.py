"""Frozen features (tiny GPT-2 / BERT built in-process), their disk cache, logistic regression with C chosen
on validation, and the TF-IDF / bag-of-words floor end to end on the real SMS file."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_spam.arguments import DataArguments, parse_args
from hf_spam.data import load_splits, tokenize
from hf_spam.frozen_features import backbone as backbone_module
from hf_spam.frozen_features import extract as features
from hf_spam.frozen_features.arguments import FeatureArguments
from hf_spam.frozen_features.backbone import load_backbone, resolve_pooling
from hf_spam.frozen_features.extract import extract_features, feature_matrix, features_cache_file
from hf_spam.frozen_features.fit import embedding_pipeline, evaluate_classifier, fit_with_validation
from hf_spam.models.remote.modeling_hf_spam import pool

REPO = Path(__file__).resolve().parents[1]
LAYOUT = {  # the top-level keys of every recipe's metrics.json (hf_spam.run_folder.metrics_record)
    "schema_version", "recipe", "run", "model", "implementation", "dataset", "splits", "split_sizes",
    "split_report", "seconds", "training", "parameters", "peak_memory", "device", "num_processes",
    "mixed_precision", "operating_point",
}  # fmt: skip
SPLIT_METRICS = {"n", "loss", "accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix"}
BERT_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *"!?.,'&:;-/£$",
    *"abcdefghijklmnopqrstuvwxyz0123456789",
]


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("frozen_features", REPO / "recipes" / "frozen_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A BERT encoder folder (config, weights, WordPiece tokenizer of characters), 2 layers of width 16."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = BERT_VOCAB + [f"##{c}" for c in BERT_VOCAB[5:]]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, model_max_length=64)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def backbone_args(kind: str, tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir, **kwargs) -> FeatureArguments:
    if kind == "gpt2":
        return FeatureArguments(model=str(tiny_gpt2_dir), tokenizer=str(gpt2_tokenizer_dir), **kwargs)
    return FeatureArguments(model=str(tiny_bert_dir), implementation="transformers", **kwargs)


@pytest.fixture(scope="module")
def sms_small(sms_file):
    splits, _ = load_splits(
        DataArguments(data_source=str(sms_file), max_train_samples=40, max_eval_samples=12), 123
    )
    return splits


def separable(n: int, rng: np.random.Generator, spam_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Points on both sides of a random hyperplane with a margin of 1 (no point is ambiguous)."""
    w = np.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.5])
    x = rng.normal(size=(n * 10, len(w)))  # about 16 % on each side, beyond the margin
    score = x @ w / np.linalg.norm(w)
    x, score = x[np.abs(score) > 1], score[np.abs(score) > 1]
    spam, ham = x[score > 0], x[score < 0]
    n_spam = int(n * spam_share)
    x = np.concatenate([spam[:n_spam], ham[: n - n_spam]])
    y = np.r_[np.ones(n_spam, dtype=int), np.zeros(n - n_spam, dtype=int)]
    order = rng.permutation(n)
    return x[order], y[order]


def test_logistic_regression_reaches_100_percent_on_separable_features():
    rng = np.random.default_rng(0)
    train, val, test = separable(200, rng), separable(60, rng), separable(100, rng)
    fit = fit_with_validation(embedding_pipeline(), *train, *val, C_grid=[100, 0.1, 1])
    assert list(fit.val_accuracy_by_C) == ["0.1", "1", "100"]
    for x, y in (train, val, test):
        assert evaluate_classifier(fit.model, x, y)["accuracy"] == 1.0
    # ties go to the smallest C among the best on validation
    best = max(fit.val_accuracy_by_C.values())
    assert fit.best_C == min(float(c) for c, acc in fit.val_accuracy_by_C.items() if acc == best)
    assert fit.num_parameters() == train[0].shape[1] + 1


def test_C_is_chosen_on_validation_and_the_model_refit_on_train_only():
    rng = np.random.default_rng(1)
    train, val = separable(200, rng, spam_share=0.3), separable(60, rng, spam_share=0.3)
    fit = fit_with_validation(embedding_pipeline(), *train, *val, C_grid=[1e-6, 1.0])
    # C=1e-6 shrinks every weight to ~0: only the intercept is left, which predicts the majority class
    assert fit.val_accuracy_by_C["1e-06"] == pytest.approx(0.7, abs=0.02)
    assert fit.val_accuracy_by_C["1"] == 1.0 and fit.best_C == 1.0
    on_train = embedding_pipeline().set_params(lr__C=1.0).fit(*train)
    np.testing.assert_allclose(fit.model[-1].coef_, on_train[-1].coef_, rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        fit_with_validation(embedding_pipeline(), *train, *val, C_grid=[0.0, 1.0])


@pytest.mark.parametrize("method", ["tfidf", "bow"])
def test_text_baseline_end_to_end_on_sms(method, recipe, sms_file, tmp_path, capsys):
    argv = [
        "--method",
        method,
        "--data_source",
        str(sms_file),
        "--output_dir",
        str(tmp_path),
        "--run_name",
        "r",
    ]
    returned = recipe.main(argv)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert set(metrics) == LAYOUT and metrics["splits"] == returned["splits"]
    assert metrics["split_sizes"] == {"train": 1045, "validation": 149, "test": 300}  # the book's split
    assert metrics["implementation"] == f"frozen_features:{method}"
    for name, split in metrics["splits"].items():
        assert set(split) >= SPLIT_METRICS and split["n"] == metrics["split_sizes"][name]
    assert metrics["splits"]["test"]["accuracy"] > 0.9
    assert summary["accuracy"]["test"] == round(metrics["splits"]["test"]["accuracy"], 4)
    training = metrics["training"]["details"]
    assert set(training["val_accuracy_by_C"]) == {"0.01", "0.1", "1", "10", "100"}
    best = metrics["training"]["best"]
    assert best["value"] == training["val_accuracy_by_C"][f"{training['best_C']:g}"]
    assert metrics["parameters"]["trainable"] == metrics["parameters"]["total"] == training["feature_dim"] + 1
    args = json.loads((tmp_path / "r" / "args.json").read_text())
    assert args["FeatureArguments"]["method"] == method and args["DataArguments"]["protocol"] == "book"


def test_an_existing_run_folder_is_refused_unless_overwritten(recipe, sms_file, tmp_path, capsys):
    from hf_spam.cli import run_main

    argv = [
        "--method",
        "tfidf",
        "--data_source",
        str(sms_file),
        "--output_dir",
        str(tmp_path),
        "--run_name",
        "r",
    ]
    assert run_main(recipe.main, argv) == 0
    first = (tmp_path / "r" / "metrics.json").read_bytes()
    capsys.readouterr()
    assert run_main(recipe.main, [*argv, "--method", "bow"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"the run folder {tmp_path / 'r'} exists already" in error[0]
    assert "--overwrite_output_dir" in error[0] and "--resume_from_checkpoint" not in error[0]  # none here
    assert (tmp_path / "r" / "metrics.json").read_bytes() == first  # the first run is untouched
    assert run_main(recipe.main, [*argv, "--method", "bow", "--overwrite_output_dir"]) == 0
    replaced = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert replaced["implementation"] == "frozen_features:bow"


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_features_equal_an_unpadded_forward_of_each_text(
    kind, sms_small, tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir, tmp_path
):
    """Batched (padded, length-sorted) extraction gives each row the features of its own text, in order."""
    backbone = load_backbone(backbone_args(kind, tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir))
    tokens = tokenize(sms_small["validation"], backbone.tokenizer, max_length=64, cache_dir=tmp_path)
    by_pooling = {}
    for pooling in ("first", "last", "mean"):
        out, _ = extract_features(tokens, backbone, pooling, batch_size=5, cache_dir=tmp_path)
        x, y = feature_matrix(out)
        assert x.shape == (len(tokens), backbone.hidden_size) and x.dtype == np.float32
        assert y.tolist() == tokens["label"][:]
        for i in (0, 3, len(tokens) - 1):
            ids = torch.tensor([tokens[i]["input_ids"]])
            with torch.inference_mode():
                expected = pool(backbone.hidden_states(ids, torch.ones_like(ids)), None, pooling)[0]
            torch.testing.assert_close(torch.from_numpy(x[i]), expected, rtol=1e-4, atol=1e-5)
        by_pooling[pooling] = x
    assert not np.allclose(by_pooling["first"], by_pooling["last"])
    assert not np.allclose(by_pooling["last"], by_pooling["mean"])


def test_default_pooling_and_parameter_count_without_loading(
    tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir
):
    bert = load_backbone(backbone_args("bert", tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir))
    ours = load_backbone(backbone_args("gpt2", tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir))
    theirs = load_backbone(
        FeatureArguments(
            model=str(tiny_gpt2_dir), implementation="transformers", tokenizer=str(gpt2_tokenizer_dir)
        )
    )
    assert (bert.default_pooling(), ours.default_pooling(), theirs.default_pooling()) == (
        "first",
        "last",
        "last",
    )
    assert resolve_pooling("cls", ours) == "first"
    for backbone in (bert, ours, theirs):
        counted = backbone.num_parameters()  # a meta-device copy: the weights are not loaded
        assert backbone._model is None
        assert counted == sum(p.numel() for p in {id(p): p for p in backbone.model.parameters()}.values())


def test_backbone_identity_follows_weights_and_seed(tiny_gpt2_dir, gpt2_tokenizer_dir, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_gpt2_dir, tmp_path / "copy")
    backbone = load_backbone(FeatureArguments(model=str(folder), tokenizer=str(gpt2_tokenizer_dir)))
    before = backbone.identity()
    assert (
        load_backbone(FeatureArguments(model=str(folder), tokenizer=str(gpt2_tokenizer_dir))).identity()
        == before
    )
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1))  # rewritten weights
    assert backbone.identity() != before
    random = [
        load_backbone(
            FeatureArguments(model=str(folder), tokenizer=str(gpt2_tokenizer_dir), weights="random", seed=s)
        )
        for s in (1, 1, 2)
    ]
    assert random[0].identity() == random[1].identity() != random[2].identity()


def test_second_run_reuses_the_cached_features(
    recipe, sms_file, tiny_gpt2_dir, gpt2_tokenizer_dir, tmp_path, monkeypatch, capsys
):
    argv = [
        "--model", str(tiny_gpt2_dir), "--tokenizer", str(gpt2_tokenizer_dir), "--data_source", str(sms_file),
        "--max_train_samples", "40", "--max_eval_samples", "12", "--batch_size", "8", "--max_length", "64",
        "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path), "--C_grid", "0.1", "1",
    ]  # fmt: skip
    calls = features.EXTRACTION_CALLS
    first = recipe.main([*argv, "--run_name", "first"])
    assert not first["training"]["details"]["cache_hit"]
    assert features.EXTRACTION_CALLS - calls == 5 + 2 + 2  # ceil(40 / 8) + 2 * ceil(12 / 8) batches
    assert len(list((tmp_path / "cache" / "features").glob("*.arrow"))) == 3

    def must_not_load(*args, **kwargs):
        raise AssertionError("the backbone was loaded although every feature is cached")

    monkeypatch.setattr(backbone_module, "_load_model", must_not_load)
    calls = features.EXTRACTION_CALLS
    second = recipe.main([*argv, "--run_name", "second"])
    assert second["training"]["details"]["cache_hit"] and features.EXTRACTION_CALLS == calls
    assert second["splits"] == first["splits"]
    assert second["parameters"] == first["parameters"]  # counted without loading the weights
    monkeypatch.undo()
    third = recipe.main([*argv, "--run_name", "third", "--pooling", "mean"])  # another pooling: a new file
    assert not third["training"]["details"]["cache_hit"] and third["training"]["details"]["pooling"] == "mean"
    assert len(list((tmp_path / "cache" / "features").glob("*.arrow"))) == 6
    capsys.readouterr()


def test_features_cache_file_depends_on_data_backbone_and_pooling(
    sms_small, tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir, tmp_path
):
    ours = load_backbone(backbone_args("gpt2", tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir))
    train = tokenize(sms_small["train"], ours.tokenizer, max_length=64, cache_dir=tmp_path)
    val = tokenize(sms_small["validation"], ours.tokenizer, max_length=64, cache_dir=tmp_path)
    shorter = tokenize(sms_small["train"], ours.tokenizer, max_length=32, cache_dir=tmp_path)
    random = load_backbone(
        backbone_args("gpt2", tiny_gpt2_dir, tiny_bert_dir, gpt2_tokenizer_dir, weights="random")
    )
    base = features_cache_file(train, ours, "last", tmp_path)[0]
    assert base == features_cache_file(train, ours, "last", tmp_path)[0]
    others = [
        features_cache_file(val, ours, "last", tmp_path)[0],
        features_cache_file(shorter, ours, "last", tmp_path)[0],
        features_cache_file(train, random, "last", tmp_path)[0],
        features_cache_file(train, ours, "mean", tmp_path)[0],
    ]
    assert len({base, *others}) == 5 and base.parent == tmp_path / "features"


def test_arguments_from_yaml_and_the_command_line(tmp_path):
    config = tmp_path / "features.yaml"
    config.write_text("method: bow\nC_grid: [0.5, 2]\npooling: cls\nmax_train_samples: 10\n")
    args, data_args = parse_args((FeatureArguments, DataArguments), [str(config), "--C_grid", "3", "4"])
    assert (args.method, args.pooling, args.C_grid, data_args.max_train_samples) == (
        "bow",
        "cls",
        [3.0, 4.0],
        10,
    )
    with pytest.raises(ValueError, match="C_grid"):
        FeatureArguments(C_grid=[1.0, -1.0])
