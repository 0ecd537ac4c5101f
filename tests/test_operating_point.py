"""The operating point chosen on validation: thresholds, temperature scaling, calibration metrics, class
weights, and a tiny real run that saves them for Predictor and recipes/predict.py to apply."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from helpers import recipe
from sklearn import metrics as sk
from sklearn.utils.class_weight import compute_class_weight

from hf_spam.evaluation.calibration import expected_calibration_error, fit_temperature
from hf_spam.evaluation.operating_point import (
    OperatingPointArguments,
    balanced_class_weights,
    choose_threshold,
    threshold_metrics,
)

REPO = Path(__file__).resolve().parents[1]

# positives and negatives whose best thresholds are worked out by hand below
POSITIVE = [0.35, 0.6, 0.7, 0.9]
NEGATIVE = [0.1, 0.2, 0.3, 0.4, 0.65]


def known_scores() -> tuple[np.ndarray, np.ndarray]:
    return np.array(POSITIVE + NEGATIVE), np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))


def test_threshold_for_f1_precision_and_recall_on_a_known_case():
    scores, labels = known_scores()
    # >= 0.35: 4 TP, 2 FP (0.4, 0.65): F1 0.8; >= 0.6: 3 TP, 1 FP: 0.75; >= 0.7: 2 TP, 0 FP: 0.667
    best = choose_threshold(scores, labels, "f1")
    assert best["threshold"] == 0.35 and best["f1"] == pytest.approx(0.8) and best["met"]
    # precision 1.0 first holds at 0.7 (recall 0.5; at 0.9 recall falls to 0.25)
    precise = choose_threshold(scores, labels, "precision@0.99")
    assert precise["threshold"] == 0.7 and precise["recall"] == 0.5 and precise["precision"] == 1.0
    # recall 1.0 holds up to 0.35, where precision is highest (4/6; at 0.3 it is 4/7)
    recalled = choose_threshold(scores, labels, "recall@0.95")
    assert recalled["threshold"] == 0.35 and recalled["precision"] == pytest.approx(4 / 6)


def test_f1_threshold_is_the_brute_force_optimum_on_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.2
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0, 1)
    chosen = choose_threshold(scores, labels, "f1")
    f1s = {t: sk.f1_score(labels, scores >= t) for t in np.unique(scores)}
    assert chosen["f1"] == pytest.approx(max(f1s.values()))
    assert f1s[chosen["threshold"]] == pytest.approx(max(f1s.values()))
    assert chosen["threshold"] != 0.5  # the optimum is not the default here


def test_unreachable_target_is_reported_not_hidden():
    scores, labels = np.array([0.2, 0.4, 0.6, 0.8]), np.array([1, 0, 1, 0])
    result = choose_threshold(scores, labels, "precision@0.99")
    assert not result["met"] and result["precision"] < 0.99


@pytest.mark.parametrize("bad", ["precision", "precision@1.5", "recall@0", "accuracy@0.9", "f2"])
def test_bad_threshold_for_is_a_one_line_error(bad):
    with pytest.raises(ValueError, match="--threshold_for"):
        OperatingPointArguments(threshold_for=bad)


def test_threshold_metrics_match_sklearn():
    scores, labels = known_scores()
    got = threshold_metrics(scores, labels, 0.6)
    predictions = scores >= 0.6
    assert got["precision"] == sk.precision_score(labels, predictions) == 0.75
    assert got["confusion_matrix"] == sk.confusion_matrix(labels, predictions).tolist() == [[4, 1], [1, 3]]


def test_ece_by_hand():
    # confidences 0.9, 0.9 (one right) -> bin 14 (0.8667, 0.9333]: |0.5 - 0.9|; 0.6 (right) -> |1 - 0.6|
    probs = np.array([[0.1, 0.9], [0.1, 0.9], [0.6, 0.4]])
    labels = np.array([1, 0, 0])
    assert expected_calibration_error(probs, labels) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model():
    torch.manual_seed(0)
    true_logit = torch.randn(4000) * 1.5
    labels = torch.bernoulli(torch.sigmoid(true_logit)).long()
    overconfident = torch.stack([torch.zeros(4000), 4 * true_logit], 1)  # 4x too sure of itself
    temperature = fit_temperature(overconfident[:2000], labels[:2000])  # fitted on "validation"
    assert temperature == pytest.approx(4.0, rel=0.15)
    # the NLL minimum of a 1-D grid search agrees with LBFGS
    grid = torch.linspace(1, 8, 141)
    nll = [F.cross_entropy(overconfident[:2000] / t, labels[:2000]).item() for t in grid]
    assert temperature == pytest.approx(grid[int(np.argmin(nll))].item(), abs=0.05)
    test_logits, test_labels = overconfident[2000:], labels[2000:].numpy()
    before = expected_calibration_error(torch.softmax(test_logits, -1).numpy(), test_labels)
    after = expected_calibration_error(torch.softmax(test_logits / temperature, -1).numpy(), test_labels)
    assert before > 0.1 and after < 0.03 and after < before / 4


def test_balanced_weights_are_sklearns():
    labels = np.array([0] * 87 + [1] * 13)
    ours = balanced_class_weights(labels, 2)
    assert ours == pytest.approx(compute_class_weight("balanced", classes=np.array([0, 1]), y=labels))
    with pytest.raises(ValueError, match="class_weights"):
        balanced_class_weights(np.array([0, 0]), 2)


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_class_weights_change_the_training_loss_as_computed_by_hand(tiny_bert_dir):
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSequenceClassification

    from hf_spam.arguments import TrainArguments
    from hf_spam.data.tokenizer import load_tokenizer
    from hf_spam.training.trainer import Trainer

    tokenizer = load_tokenizer(tiny_bert_dir)
    texts = ["free prize now", "call me", "ok", "win a free mobile", "i am in", "txt to claim"]
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([1, 0, 0, 1, 0, 0])
    weights = balanced_class_weights(batch["labels"].numpy(), 2)  # [0.75, 1.5]
    losses = {}
    for name, class_weights in (("plain", None), ("weighted", weights)):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_bert_dir, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
        with torch.no_grad():
            log_p = torch.log_softmax(model(batch["input_ids"], batch["attention_mask"]).logits, -1)
        args = TrainArguments(output_dir="unused", learning_rate=1e-3)
        trainer = Trainer(model, DataLoader(texts), DataLoader(texts), Accelerator(cpu=True), args,
                          "unused", class_weights=class_weights)  # fmt: skip
        trainer._train_batch(batch)
        losses[name] = trainer.state.running["loss"] / trainer.state.running["n"]
        AcceleratorState._reset_state(reset_partial_state=True)
        w = torch.tensor(weights if class_weights else [1.0, 1.0])[batch["labels"]]
        picked = log_p[torch.arange(6), batch["labels"]]
        assert losses[name] == pytest.approx((-(w * picked).sum() / w.sum()).item(), rel=1e-5)
    assert losses["weighted"] != pytest.approx(losses["plain"], rel=1e-3)


def test_a_run_picks_and_saves_its_operating_point_and_predict_applies_it(
    tiny_bert_dir, sms_file, tmp_path, capsys
):
    import transformers

    from hf_spam.arguments import DataArguments
    from hf_spam.data import load_splits
    from hf_spam.serving.predict import Predictor

    metrics = recipe("bert_classifier").main([
        "--model", str(tiny_bert_dir), "--data_source", str(sms_file), "--output_dir", str(tmp_path),
        "--run_name", "op", "--max_train_samples", "48", "--max_eval_samples", "40", "--num_epochs", "1",
        "--learning_rate", "1e-3", "--calibrate", "temperature", "--class_weights", "balanced",
        "--threshold_for", "recall@0.9", "--protocol", "stratified",
    ])  # fmt: skip
    run_dir = tmp_path / "op"
    point = json.loads((run_dir / "operating_point.json").read_text())
    record = metrics["operating_point"]
    assert point["threshold"] == record["threshold"] and point["temperature"] == record["temperature"] != 1.0
    assert point["positive_label"] == "spam" and point["threshold_for"] == "recall@0.9"
    assert (
        metrics["training"]["details"]["class_weights"][1]
        > 1
        > metrics["training"]["details"]["class_weights"][0]
    )
    assert set(record["calibration"]["test"]) == {"before", "after"}
    assert record["ece_binning"].startswith("15 equal-width bins")
    assert {"pr_auc", "brier", "ece"} <= set(metrics["splits"]["test"])
    saved = json.loads((run_dir / "metrics.json").read_text())["operating_point"]
    assert saved["at_0.5"]["test"]["f1"] == record["at_0.5"]["test"]["f1"]
    examples = json.loads((run_dir / "examples.json").read_text())["examples"]
    assert {e["label"] for e in examples} == {"ham", "spam"}

    # the threshold was chosen on the validation texts' calibrated probabilities, and the test metrics
    # at it are those of Predictor's labels on the test texts
    data_args = DataArguments(**json.loads((run_dir / "args.json").read_text())["DataArguments"])
    splits, _ = load_splits(data_args, seed=123)
    predictor = Predictor(run_dir)
    assert predictor.threshold == point["threshold"] and predictor.temperature == point["temperature"]
    val = predictor.probabilities(splits["validation"]["text"])[:, 1].numpy()
    assert choose_threshold(val, np.array(splits["validation"]["label"]), "recall@0.9")["threshold"] == (
        pytest.approx(point["threshold"], abs=1e-6)
    )
    test = predictor(splits["test"]["text"])
    predicted = [int(r["label"] == "spam") for r in test]
    assert predicted == [int(r["probabilities"]["spam"] >= point["threshold"]) for r in test]
    assert sk.f1_score(splits["test"]["label"], predicted) == pytest.approx(
        record["at_threshold"]["test"]["f1"]
    )

    # transformers' pipeline applies neither: its probabilities are the uncalibrated ones
    pipe = transformers.pipeline("text-classification", model=str(run_dir), top_k=None)
    texts = splits["test"]["text"][:4]
    for mine, theirs in zip(predictor(texts), pipe(texts), strict=True):
        raw = torch.tensor([next(s["score"] for s in theirs if s["label"] == k) for k in ("ham", "spam")])
        calibrated = torch.softmax(raw.log() / point["temperature"], -1)
        assert mine["probabilities"]["spam"] == pytest.approx(calibrated[1].item(), abs=1e-5)

    capsys.readouterr()
    recipe("predict").main(["--run", str(run_dir), *texts])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == [r["label"] for r in predictor(texts)]
    assert all(line["threshold"] == point["threshold"] and line["long_text"] == "chunks" for line in lines)
