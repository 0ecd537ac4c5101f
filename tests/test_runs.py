"""Trustworthy runs: run folders, atomic checkpoints that belong to their run, argument validation,
one-line errors, trackers, one metrics.json layout, and the loop's schedule, clipping and freezing."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import accelerate.checkpointing
import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

import hf_spam.training.fine_tune
import hf_spam.training.trainer
from hf_spam.arguments import DataArguments, ModelArguments, TrainArguments, parse_args
from hf_spam.cli import run_main
from hf_spam.errors import CheckpointError, CheckpointMismatchError, DataError
from hf_spam.hub import OfflineError
from hf_spam.training.checkpoints import STATE_FILE, find_checkpoint
from hf_spam.training.fine_tune import run_classification

REPO = Path(__file__).resolve().parents[1]
GROUPS = (ModelArguments, DataArguments, TrainArguments)
EVAL_PAUSE = 0.5  # seconds added to each validation evaluation of the shared run


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def tiny_args(model_dir, tokenizer_dir, sms_file, output_dir) -> list[str]:
    """32 training rows, batch 8: 4 optimizer steps per epoch."""
    return [
        "--model", str(model_dir), "--weights", "random", "--tokenizer", str(tokenizer_dir),
        "--data_source", str(sms_file), "--output_dir", str(output_dir), "--trainable", "all",
        "--max_train_samples", "32", "--max_eval_samples", "9", "--batch_size", "8", "--num_epochs", "1",
        "--eval_every", "0", "--learning_rate", "1e-3",
    ]  # fmt: skip


@pytest.fixture
def args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path) -> list[str]:
    return tiny_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path)


def run(argv: list[str]) -> dict:
    return run_classification(*parse_args(GROUPS, argv))


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# -- one shared run: 2 epochs of 4 steps, evaluation every 2 steps, tensorboard, slow evaluations -------
@pytest.fixture(scope="module")
def shared_run(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("shared")
    real_predict = hf_spam.training.trainer.predict_logits

    def slow_predict(*a, **k):  # what the trainer's validation evaluations call
        time.sleep(EVAL_PAUSE)
        return real_predict(*a, **k)

    real_train = hf_spam.training.trainer.Trainer.train
    wall: dict[str, float] = {}

    def timed_train(self):
        start = time.perf_counter()
        try:
            return real_train(self)
        finally:
            wall["train"] = time.perf_counter() - start

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hf_spam.training.trainer, "predict_logits", slow_predict)
        patch.setattr(hf_spam.training.trainer.Trainer, "train", timed_train)
        metrics = run([
            *tiny_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, out), "--run_name", "shared",
            "--num_epochs", "2", "--eval_every", "2", "--report_to", "tensorboard",
        ])  # fmt: skip
    AcceleratorState._reset_state(reset_partial_state=True)
    metrics["wall_seconds_of_trainer_train"] = wall["train"]  # for the test of the reported seconds
    return metrics, out / "shared"


def test_checkpoint_every_default_saves_at_epoch_ends_only(shared_run):
    _, run_dir = shared_run
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4, 6, 8]  # evaluated every 2 steps ...
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert saved == ["step_0000004", "step_0000008"]  # ... but checkpoints only at the 2 epoch ends
    help_text = TrainArguments.__dataclass_fields__["checkpoint_every"].metadata["help"]
    assert "each epoch end" in help_text and "evaluation" not in help_text


def test_training_state_is_saved_as_json_not_pickle(shared_run):
    _, run_dir = shared_run
    checkpoint = run_dir / "checkpoints" / "step_0000008"
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # accelerate pickles registered objects
    saved = json.loads((checkpoint / STATE_FILE).read_text())
    assert saved["state"]["global_step"] == 8 and saved["state"]["epoch"] == 2
    assert saved["identity"]["train.seed"] == 123
    assert saved["identity"]["data.fingerprint.train"]


def test_final_run_folder_holds_the_model_and_no_working_copy(shared_run):
    _, run_dir = shared_run
    # the working copy is gone; only resumable checkpoints keep the best weights as of their step
    best = list(run_dir.rglob("*best_trainable*"))
    assert best and all(p.parent.parent == run_dir / "checkpoints" for p in best)
    assert not (run_dir / "checkpoints" / "best_trainable.safetensors").exists()
    assert not list(run_dir.rglob(".tmp-*"))
    names = {p.name for p in run_dir.iterdir()}
    expected = {"metrics.json", "args.json", "history.json", "curves.png", "config.json", "model.safetensors"}
    expected |= {"operating_point.json", "examples.json"}  # for Predictor and the app
    expected |= {"test_predictions.csv"}  # per test example, for hf_spam.study's paired tests
    assert expected <= names <= expected | {"checkpoints", "logs", "tokenizer.json", "tokenizer_config.json"}


def test_reported_seconds_separate_training_and_evaluation(shared_run):
    metrics, run_dir = shared_run
    seconds = metrics["seconds"]
    assert seconds["evaluation"] >= 4 * EVAL_PAUSE  # the 4 validation evaluations, slowed down
    # the evaluations' time is not also counted as training: both together fit in the loop's wall time
    assert 0 < seconds["training"]
    assert seconds["training"] + 4 * EVAL_PAUSE <= metrics["wall_seconds_of_trainer_train"]
    assert json.loads((run_dir / "metrics.json").read_text())["seconds"] == seconds
    assert metrics["training"]["examples_per_second"] == pytest.approx(
        metrics["training"]["examples"] / seconds["training"]
    )


def test_report_to_tensorboard_logs_in_the_run_folder(shared_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir = shared_run
    assert list((run_dir / "logs").rglob("events.out.tfevents.*"))
    reader = EventAccumulator(str(run_dir / "logs" / "shared"))  # accelerate: logging_dir/<run name>
    reader.Reload()
    logged = [(e.step, e.value) for e in reader.Scalars("val_accuracy")]
    history = json.loads((run_dir / "history.json").read_text())
    assert logged == [(h["step"], pytest.approx(h["val_accuracy"])) for h in history]


def test_a_tracker_that_is_not_installed_is_an_error_at_start():
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    installed = {t.value for t in get_available_trackers()}
    missing = next(t.value for t in LoggerType if t.value not in installed | {"all"})
    with pytest.raises(ValueError, match=f"--report_to {missing}: the {missing} package is not installed"):
        parse_args(GROUPS, ["--report_to", missing])
    with pytest.raises(ValueError, match="not an accelerate tracker"):
        parse_args(GROUPS, ["--report_to", "tensorbored"])


def test_metrics_json_has_one_layout_for_every_recipe(shared_run, sms_file, tmp_path):
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        import frozen_features
    finally:
        sys.path.pop(0)
    fine_tuned = json.loads((shared_run[1] / "metrics.json").read_text())
    frozen_features.main(["--method", "tfidf", "--data_source", str(sms_file), "--output_dir", str(tmp_path),
                          "--run_name", "tfidf", "--max_train_samples", "200"])  # fmt: skip
    frozen = json.loads((tmp_path / "tfidf" / "metrics.json").read_text())

    def layout(value, depth=0):
        if isinstance(value, dict) and depth < 3:
            return {k: layout(v, depth + 1) for k, v in value.items() if k not in ("details", "split_report")}
        return type(value).__name__ if isinstance(value, (list, str, bool)) else "number-or-none"

    assert layout(fine_tuned) == layout(frozen)
    assert fine_tuned["schema_version"] == frozen["schema_version"] == 1
    assert (fine_tuned["recipe"], frozen["recipe"]) == ("fine_tuning", "frozen_features")
    assert fine_tuned["training"]["details"]["optimizer_steps"] == 8
    assert frozen["training"]["details"]["best_C"] > 0


# -- run folders ---------------------------------------------------------------------------------------
def test_an_existing_run_folder_is_an_error_unless_overwrite_or_resume(args, tmp_path, monkeypatch):
    run([*args, "--run_name", "taken"])
    marker = tmp_path / "taken" / "checkpoints" / "from_the_first_run"
    marker.touch()

    def no_loading(*a, **k):
        raise AssertionError("the data was loaded before the run folder was checked")

    with monkeypatch.context() as patch:
        patch.setattr(hf_spam.training.fine_tune, "prepare_data", no_loading)
        with pytest.raises(FileExistsError, match=f"{tmp_path / 'taken'} exists already"):
            run([*args, "--run_name", "taken", "--seed", "7"])
    assert marker.exists()  # the first run's folder is untouched
    run([*args, "--run_name", "taken", "--seed", "7", "--overwrite_output_dir"])
    assert not marker.exists()
    assert json.loads((tmp_path / "taken" / "args.json").read_text())["TrainArguments"]["seed"] == 7


def test_resume_refuses_a_checkpoint_of_another_run(args, tmp_path):
    run([*args, "--run_name", "first"])
    checkpoint = tmp_path / "first" / "checkpoints" / "step_0000004"
    other = [*args, "--run_name", "first", "--resume_from_checkpoint", str(checkpoint)]
    with pytest.raises(CheckpointMismatchError) as error:
        run([*other, "--seed", "7", "--learning_rate", "2e-3", "--max_train_samples", "40"])
    message = str(error.value)
    assert str(checkpoint) in message
    for difference in ("train.seed: 123 in the checkpoint, 7 now", "train.learning_rate: 0.001",
                       "data.max_train_samples: 32", "data.fingerprint.train"):  # fmt: skip
        assert difference in message
    assert "model.model" not in message  # only what differs is listed


# -- atomic checkpoints ------------------------------------------------------------------------------
def fail_writing(step: int, error: BaseException, seen: dict):
    """A replacement for accelerate's ``save`` that fails writing the optimizer of checkpoint ``step``
    (the model file is already written by then), after noting the earlier checkpoints' bytes."""
    real_save = accelerate.checkpointing.save

    def save(obj, path, *a, **k):
        if f"step_{step:07d}" in str(path) and Path(path).name.startswith("optimizer"):
            folder = Path(path).parents[1]
            seen["before"] = {p.name: folder_digest(p) for p in sorted(folder.glob("step_*"))}
            raise error
        return real_save(obj, path, *a, **k)

    return save


def test_a_full_disk_is_a_clear_error_and_keeps_the_earlier_checkpoints(args, tmp_path, monkeypatch):
    seen: dict = {}
    monkeypatch.setattr(accelerate.checkpointing, "save",
                        fail_writing(4, OSError(errno.ENOSPC, "No space left on device"), seen))  # fmt: skip
    with pytest.raises(CheckpointError, match="no space left on the device") as error:
        run([*args, "--run_name", "full", "--checkpoint_every", "2"])
    assert "(step_0000002) are intact" in str(error.value)
    folder = tmp_path / "full" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_0000002"]  # no .tmp-step_0000004 left
    assert {p.name: folder_digest(p) for p in folder.glob("step_*")} == seen["before"]
    assert find_checkpoint("latest", tmp_path / "full").name == "step_0000002"


def test_a_kill_while_writing_leaves_no_checkpoint_and_latest_resumes(args, tmp_path, monkeypatch):
    seen: dict = {}
    with monkeypatch.context() as patch:
        patch.setattr(accelerate.checkpointing, "save", fail_writing(4, KeyboardInterrupt(), seen))
        with pytest.raises(KeyboardInterrupt):  # as far as the files go, a kill mid-write
            run([*args, "--run_name", "killed", "--checkpoint_every", "2"])
    AcceleratorState._reset_state(reset_partial_state=True)
    folder = tmp_path / "killed" / "checkpoints"
    assert sorted(p.name for p in folder.glob("step_*")) == ["step_0000002"]  # no half-written step_4
    (folder / "step_0000003").mkdir()  # an incomplete folder (as older versions left): skipped
    (folder / "step_0000003" / "model.safetensors").write_bytes(b"")
    resumed = run(
        [*args, "--run_name", "killed", "--checkpoint_every", "2", "--resume_from_checkpoint", "latest"]
    )
    assert resumed["training"]["details"]["optimizer_steps"] == 4
    assert not list(folder.glob(".tmp-*"))
    assert sorted(p.name for p in folder.glob("step_*")) == ["step_0000002", "step_0000003", "step_0000004"]


# -- flags -----------------------------------------------------------------------------------------------
BAD_VALUES = [
    ("weight_decay", "-0.1", ">= 0"),
    ("max_steps", "0", ">= 1"),
    ("warmup_steps", "-1", ">= 0"),
    ("eval_every", "-1", ">= 0"),
    ("checkpoint_every", "0", ">= 1"),
    ("early_stopping_patience", "0", ">= 1"),
    ("max_grad_norm", "0", "> 0"),
    ("metric_for_best", "bleu", "choose one of"),
    ("trainable", "everything", "everything"),
    ("padding_side", "middle", "middle"),
]


@pytest.mark.parametrize(("flag", "value", "expected"), BAD_VALUES)
def test_every_argument_is_validated_from_the_command_line_and_yaml(flag, value, expected, tmp_path):
    with pytest.raises(ValueError, match=f"{flag}.*{expected}|{expected}.*{flag}"):
        parse_args(GROUPS, [f"--{flag}", value])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({flag: yaml.safe_load(value)}))
    with pytest.raises(ValueError, match=f"{flag}.*{expected}|{expected}.*{flag}"):
        parse_args(GROUPS, [str(config)])


def test_yaml_values_of_the_wrong_type_are_errors(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("num_epochs: 2.5\n")
    with pytest.raises(ValueError, match=r"run.yaml: --num_epochs 2.5: expected int"):
        parse_args(GROUPS, [str(config)])


def test_warmup_with_a_constant_schedule_is_an_error():
    with pytest.raises(ValueError, match="--warmup_steps has no effect with --lr_scheduler constant"):
        parse_args(GROUPS, ["--warmup_steps", "10"])
    assert parse_args(GROUPS, ["--warmup_steps", "10", "--lr_scheduler", "linear"])[2].warmup_steps == 10


def test_flags_cannot_be_abbreviated():
    with pytest.raises(ValueError, match="--learning_rat"):
        parse_args(GROUPS, ["--learning_rat", "1e-4"])
    assert parse_args(GROUPS, ["--learning_rate", "1e-4"])[2].learning_rate == 1e-4
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        import predict
    finally:
        sys.path.pop(0)
    with pytest.raises(ValueError, match="--batch"):
        predict.main(["--run", "somewhere", "--batch", "4", "a text"])


# -- one-line errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [DataError("data.csv", "no label", line=3), ValueError("--seed must be an int"),
     OfflineError("no network"), FileNotFoundError("no/such: no such file"), CheckpointError("disk full")],
)  # fmt: skip
def test_run_main_turns_user_errors_into_one_line(error, capsys, monkeypatch):
    def main(argv):
        raise error

    monkeypatch.delenv("HF_SPAM_DEBUG", raising=False)
    assert run_main(main, ["--x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {error}")
    with pytest.raises(type(error)):
        run_main(main, ["--x", "--debug"])
    monkeypatch.setenv("HF_SPAM_DEBUG", "1")
    with pytest.raises(type(error)):
        run_main(main, ["--x"])
    with pytest.raises(KeyError):  # a bug keeps its traceback
        run_main(lambda argv: {}["missing"], [])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "argv", "expected"),
    [
        ("gpt2_classifier.py", ["--weight_decay", "-1"], "error: --weight_decay must be >= 0, got -1"),
        ("bert_classifier.py", ["--learning_rat", "1"], "error: unrecognized arguments: --learning_rat"),
        ("frozen_features.py", ["--method", "tfidf", "--data_source", "no/such"], "no/such: no such file"),
        ("predict.py", ["--run", "no/such/run", "a text"], "error: no/such/run: no such folder"),
    ],
)  # fmt: skip
def test_every_recipe_prints_one_line_for_a_user_error(recipe, argv, expected, tmp_path):
    command = [sys.executable, str(REPO / "recipes" / recipe), *argv]
    env = {k: v for k, v in os.environ.items() if k != "HF_SPAM_DEBUG"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("error:") and expected in done.stderr.splitlines()[-1]
    assert done.stdout == ""
    if recipe == "gpt2_classifier.py":
        debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert debug.returncode != 0 and "Traceback" in debug.stderr and "ValueError" in debug.stderr


# -- the training loop: schedule, warmup, clipping, frozen parameters -------------------------------------
@pytest.fixture(scope="module")
def observed_run(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path_factory):
    """``last_block`` from the tiny pretrained folder, linear schedule with warmup, clipping at 0.05; the
    learning rate and gradient norm each optimizer step saw, and the gradient norm before clipping."""
    out = tmp_path_factory.mktemp("observed")
    steps: list[dict] = []
    pre_clip: list[float] = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def record(optimizer, *_):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        steps.append({"lr": optimizer.param_groups[0]["lr"], "grad_norm": norm})

    def clip(*a, **k):
        total = real_clip(*a, **k)
        pre_clip.append(total.item())
        return total

    handle = register_optimizer_step_pre_hook(record)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
            argv = tiny_args(tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, out)
            argv[argv.index("--weights") + 1] = "pretrained"
            argv[argv.index("--trainable") + 1] = "last_block"
            argv += ["--run_name", "observed", "--num_epochs", "2", "--lr_scheduler", "linear"]
            metrics = run([*argv, "--warmup_steps", "3", "--max_grad_norm", "0.05", "--weight_decay", "0.1"])
    finally:
        handle.remove()
        AcceleratorState._reset_state(reset_partial_state=True)
    return metrics, out / "observed", steps, pre_clip


def test_linear_schedule_with_warmup_sets_the_lr_of_every_step(observed_run):
    metrics, _, steps, _ = observed_run
    total, warmup, base = 8, 3, 1e-3  # 2 epochs x 4 steps
    assert metrics["training"]["details"]["optimizer_steps"] == len(steps) == total
    expected = [base * (k / warmup if k < warmup else (total - k) / (total - warmup)) for k in range(total)]
    assert [s["lr"] for s in steps] == pytest.approx(expected, abs=1e-12)


def test_gradient_clipping_limits_the_norm_each_step(observed_run):
    _, _, steps, pre_clip = observed_run
    assert len(pre_clip) == len(steps)
    assert all(s["grad_norm"] <= 0.05 * (1 + 1e-4) for s in steps)
    assert all(
        s["grad_norm"] == pytest.approx(min(raw, 0.05), rel=1e-4)
        for s, raw in zip(steps, pre_clip, strict=True)
    )
    assert max(pre_clip) > 0.1  # clipping had something to do


def test_frozen_parameters_are_bit_identical_after_training(observed_run, tiny_gpt2_dir):
    _, run_dir, _, _ = observed_run
    before = load_file(tiny_gpt2_dir / "model.safetensors")
    after = load_file(run_dir / "model.safetensors")
    trained = ("transformer.h.1.", "transformer.ln_f.")  # last_block: the last block and the final norm
    frozen = [k for k in before if k in after and not k.startswith(trained)]
    assert len(frozen) > 10 and any(k.startswith("transformer.h.0.") for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen), [
        k for k in frozen if not torch.equal(before[k], after[k])
    ]
    changed = [k for k in before if k.startswith(trained) and not torch.equal(before[k], after[k])]
    assert any(k.startswith("transformer.h.1.") for k in changed)
    assert not math.isnan(float(after["transformer.h.1.attn.c_attn.weight"].sum()))
