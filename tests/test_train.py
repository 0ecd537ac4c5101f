"""The accelerate loop end to end on tiny models and real SMS data: learning, seeding, resume, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState

from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.training.fine_tune import run_classification

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def base_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path) -> list[str]:
    return [
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--trainable", "all",
        "--max_train_samples", "48", "--max_eval_samples", "21", "--batch_size", "8",
        "--num_epochs", "2", "--eval_every", "3", "--learning_rate", "1e-3", "--dropout", "0.1",
    ]  # fmt: skip


def run(argv: list[str]) -> dict:
    model_args, data_args, train_args = parse_args((ModelArguments, DataArguments, TrainArguments), argv)
    return run_classification(model_args, data_args, train_args)


def scores(metrics: dict) -> dict:
    return {split: {k: v for k, v in m.items()} for split, m in metrics["splits"].items()}


def test_loss_falls_when_overfitting_16_examples(base_args):
    metrics = run([*base_args, "--run_name", "overfit", "--max_train_samples", "16", "--num_epochs", "25",
                   "--eval_every", "0", "--learning_rate", "3e-3", "--dropout", "0.0"])  # fmt: skip
    history = json.loads(
        (Path(base_args[base_args.index("--output_dir") + 1]) / "overfit" / "history.json").read_text()
    )
    assert len(history) == 25  # one evaluation per epoch
    assert history[-1]["train_loss"] < 0.1 * history[0]["train_loss"]
    assert metrics["splits"]["train"]["accuracy"] == 1.0
    assert metrics["splits"]["train"]["n"] == 16
    assert metrics["training"]["details"]["optimizer_steps"] == 25 * 2


def test_same_seed_same_metrics_other_seed_differs(base_args):
    a = run([*base_args, "--run_name", "a"])
    b = run([*base_args, "--run_name", "b"])
    c = run([*base_args, "--run_name", "c", "--seed", "7"])
    assert scores(a) == scores(b)
    assert scores(a) != scores(c)


def test_interrupted_run_resumes_to_the_same_metrics(base_args, tmp_path):
    # 48 rows / batch 8 = 6 steps per epoch; the interruption falls mid-way through epoch 1
    full = run([*base_args, "--run_name", "full", "--num_epochs", "3"])
    cut = [*base_args, "--run_name", "cut", "--num_epochs", "3", "--checkpoint_every", "4"]
    run(
        [*cut, "--max_steps", "10"]
    )  # "crashes" after step 10; checkpoints at steps 4 and 8 (and epoch 1 end)
    checkpoints = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert checkpoints == ["step_0000006", "step_0000008"]  # save_total_limit=2 keeps the newest two
    resumed = run([*cut, "--resume_from_checkpoint", str(tmp_path / "cut" / "checkpoints" / "step_0000008")])
    assert scores(resumed) == scores(full)
    history = lambda name: json.loads((tmp_path / name / "history.json").read_text())  # noqa: E731
    assert history("cut") == history("full")
    steps = [m["training"]["details"]["optimizer_steps"] for m in (resumed, full)]
    assert steps == [18, 18]


def test_gradient_accumulation_and_early_stopping(base_args):
    metrics = run(
        [*base_args, "--run_name", "accum", "--gradient_accumulation_steps", "2", "--eval_every", "0"]
    )
    # 6 batches per epoch -> 3 optimizer steps
    assert metrics["training"]["details"]["optimizer_steps"] == 2 * 3
    assert metrics["training"]["examples"] == 2 * 48
    stopped = run([
        *base_args, "--run_name", "stop", "--learning_rate", "1e-12", "--num_epochs", "20",
        "--eval_every", "0", "--early_stopping_patience", "2", "--metric_for_best", "accuracy",
    ])  # fmt: skip
    # lr 1e-12 leaves every prediction as it was: validation accuracy never improves after epoch 1
    assert stopped["training"]["details"]["stopped_early"]
    assert stopped["training"]["details"]["epochs_completed"] == 3
    assert stopped["training"]["best"]["step"] == 6


def test_outputs_pipeline_and_predict(base_args, tmp_path):
    metrics = run(
        [*base_args, "--run_name", "out", "--padding", "longest_in_dataset", "--padding_side", "left"]
    )
    run_dir = tmp_path / "out"
    for name in (
        "metrics.json",
        "args.json",
        "history.json",
        "curves.png",
        "config.json",
        "model.safetensors",
    ):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["splits"]["test"]["n"] == 21 == metrics["split_sizes"]["test"]
    assert set(saved["splits"]["test"]) >= {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "confusion_matrix",
    }
    assert sum(map(sum, saved["splits"]["test"]["confusion_matrix"])) == 21
    assert saved["parameters"]["trainable"] == saved["parameters"]["total"] > 0
    assert saved["seconds"]["training"] > 0 and saved["seconds"]["evaluation"] > 0
    assert saved["training"]["examples_per_second"] > 0
    assert saved["device"].startswith("cpu") and saved["peak_memory"]["mb"] > 0

    import transformers

    from hf_spam.serving.predict import Predictor

    texts = ["URGENT! You have won a 1 week FREE membership", "I'll be home soon, want anything?"]
    ours = Predictor(run_dir, threshold=0.5)(texts)  # argmax, as the pipeline (no run threshold)
    pipe = transformers.pipeline("text-classification", model=str(run_dir))
    for mine, theirs in zip(ours, pipe(texts), strict=True):
        assert mine["label"] == theirs["label"]
        assert mine["probability"] == pytest.approx(theirs["score"], abs=1e-5)

    out = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "predict.py"), "--run", str(run_dir)],
        input="\n".join(texts) + "\n", capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["text"] for line in lines] == texts
    assert [line["label"] for line in lines] == [r["label"] for r in ours]
    assert [line["probability"] for line in lines] == pytest.approx(
        [r["probability"] for r in ours], abs=1e-6
    )


def test_transformers_implementation_on_a_llama_decoder(gpt2_tokenizer_dir, sms_file, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny-llama")
    metrics = run([
        "--model", str(tmp_path / "tiny-llama"), "--implementation", "transformers",
        "--tokenizer", str(gpt2_tokenizer_dir), "--data_source", str(sms_file),
        "--output_dir", str(tmp_path), "--run_name", "llama", "--max_train_samples", "32",
        "--max_eval_samples", "9", "--num_epochs", "1", "--trainable", "last_block", "--padding_side", "left",
    ])  # fmt: skip
    assert metrics["splits"]["validation"]["n"] == 9
    saved = json.loads((tmp_path / "llama" / "config.json").read_text())
    assert saved["architectures"] == ["LlamaForSequenceClassification"]
    assert saved["pad_token_id"] == 50256
    trainable = metrics["parameters"]["trainable"]
    assert 0 < trainable < metrics["parameters"]["total"]


def test_yaml_config_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: gpt2-medium\nlearning_rate: 1.0e-4\ntrainable: all\nnum_epochs: 3\n")
    model_args, data_args, train_args = parse_args(
        (ModelArguments, DataArguments, TrainArguments), [str(path), "--num_epochs", "7"]
    )
    assert (model_args.model, model_args.trainable) == ("gpt2-medium", "all")
    assert train_args.learning_rate == 1e-4 and train_args.num_epochs == 7
    assert data_args.protocol == "book"
    path.write_text("learning_rte: 0.1\n")
    with pytest.raises(ValueError, match="learning_rte"):
        parse_args((ModelArguments, DataArguments, TrainArguments), [str(path)])


@pytest.mark.slow
def test_two_processes_count_every_eval_example_once(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path):
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "recipes" / "gpt2_classifier.py"),
        "--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--run_name", "ddp",
        "--max_train_samples", "40", "--max_eval_samples", "23", "--eval_batch_size", "4",
        "--num_epochs", "1", "--trainable", "all",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    # 23 examples on 2 processes x batch 4: accelerate repeats a few to even the batches out and
    # gather_for_metrics drops the repeats again
    assert metrics["splits"]["validation"]["n"] == 23
    assert metrics["splits"]["test"]["n"] == 23
    assert metrics["splits"]["train"]["n"] == 40
    assert sum(map(sum, metrics["splits"]["test"]["confusion_matrix"])) == 23
    # training: 5 batches of 8 (drop_last) dealt to 2 processes -> 2 rounds of 2 x 8; the odd batch is dropped
    assert metrics["training"]["details"]["optimizer_steps"] == 2
    assert metrics["training"]["examples"] == 32


def test_bert_recipe_end_to_end(tiny_bert_dir, sms_file, tmp_path):
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        import bert_classifier
    finally:
        sys.path.pop(0)
    metrics = bert_classifier.main([
        "--model", str(tiny_bert_dir), "--data_source", str(sms_file), "--output_dir", str(tmp_path),
        "--run_name", "bert", "--max_train_samples", "64", "--max_eval_samples", "17", "--num_epochs", "2",
        "--learning_rate", "1e-3", "--trainable", "last_block",
    ])  # fmt: skip
    assert metrics["implementation"] == "transformers"
    assert metrics["splits"]["test"]["n"] == 17
    assert 0 < metrics["parameters"]["trainable"] < metrics["parameters"]["total"]
    saved = json.loads((tmp_path / "bert" / "config.json").read_text())
    assert saved["architectures"] == ["BertForSequenceClassification"]
    assert saved["id2label"] == {"0": "ham", "1": "spam"}

    import transformers

    from hf_spam.serving.predict import Predictor

    texts = ["urgent! call now to claim your free prize", "ok i am in the car"]
    pipe = transformers.pipeline("text-classification", model=str(tmp_path / "bert"))
    # argmax, as the pipeline: it knows no run threshold
    for mine, theirs in zip(Predictor(tmp_path / "bert", threshold=0.5)(texts), pipe(texts), strict=True):
        assert mine["label"] == theirs["label"]
        assert mine["probability"] == pytest.approx(theirs["score"], abs=1e-5)


def test_bf16_mixed_precision_from_the_accelerate_environment(base_args, monkeypatch):
    import torch
    from torch.nn.modules.module import register_module_forward_hook

    monkeypatch.setenv(
        "ACCELERATE_MIXED_PRECISION", "bf16"
    )  # what `accelerate launch --mixed_precision bf16` sets
    dtypes: dict[str, set] = {"train": set(), "eval": set()}

    def record(module, inputs, output):  # every Linear's output dtype, in training and in evaluation
        if isinstance(module, torch.nn.Linear):
            dtypes["train" if module.training else "eval"].add(output.dtype)

    handle = register_module_forward_hook(record)
    try:
        metrics = run([*base_args, "--run_name", "bf16", "--num_epochs", "1"])
    finally:
        handle.remove()
    assert metrics["mixed_precision"] == "bf16"
    # autocast ran: the Linear layers computed in bfloat16 (their weights stay float32)
    assert dtypes == {"train": {torch.bfloat16}, "eval": {torch.bfloat16}}
    assert all(0.0 <= m["accuracy"] <= 1.0 and m["loss"] == m["loss"] for m in metrics["splits"].values())


def test_sample_limits_take_random_rows_not_the_first(imdb_dir):
    from hf_spam.data import load_splits

    # the official IMDB test set is sorted neg then pos: its first 200 rows are all negative
    args = DataArguments(
        dataset="imdb", data_source=str(imdb_dir), max_train_samples=100, max_eval_samples=200
    )
    splits, report = load_splits(args, seed=123)
    assert {name: len(ds) for name, ds in splits.items()} == {"train": 100, "validation": 200, "test": 200}
    assert 60 < sum(splits["test"]["label"]) < 140  # both classes, near half and half
    again, _ = load_splits(args, seed=123)
    assert again["test"]["text"] == splits["test"]["text"]
    assert report.split_sizes()["test"] == 25_000  # the report describes the full split


def test_best_checkpoint_follows_the_chosen_metric(base_args, tmp_path):
    for metric, pick in (("loss", min), ("accuracy", max)):
        metrics = run([*base_args, "--run_name", metric, "--num_epochs", "3", "--metric_for_best", metric])
        history = json.loads((tmp_path / metric / "history.json").read_text())
        values = [h[f"val_{metric}"] for h in history]
        best = history[values.index(pick(values))]  # the first best
        assert metrics["training"]["best"]["step"] == best["step"]
        # the restored weights are the best ones: the final validation score equals the best one
        assert metrics["splits"]["validation"][metric] == pytest.approx(best[f"val_{metric}"], abs=1e-6)
