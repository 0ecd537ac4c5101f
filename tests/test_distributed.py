"""Past one process: FSDP/DeepSpeed refused where they cannot run, and two "machines" on one host.

Two machines are two ``accelerate launch`` commands on 127.0.0.1 (``--num_machines 2 --machine_rank 0|1
--main_process_ip 127.0.0.1 --main_process_port P --num_processes 2 --multi_gpu``): one process each, DDP
over gloo on CPUs, the same code path as two hosts (torch's c10d rendezvous, a world of two), sharing the
file system as a cluster's machines share an NFS folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import recipe
from safetensors import safe_open

from hf_spam.cli import run_main

REPO = Path(__file__).resolve().parents[1]
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]
COMMON = ["--mixed_precision", "no", "--dynamo_backend", "no"]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")


def missing_inputs(tmp_path: Path) -> list[str]:
    """Flags naming a model and data that do not exist: an error about them would mean they were read."""
    return ["--model", str(tmp_path / "no-model"), "--data_source", str(tmp_path / "no-data"),
            "--output_dir", str(tmp_path / "out")]  # fmt: skip


@NO_GPU
@pytest.mark.parametrize(
    ("variable", "engine"),
    [("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"), ("ACCELERATE_USE_MEGATRON_LM", "Megatron-LM")],
)
def test_a_sharding_engine_without_a_gpu_is_refused_before_anything_loads(
    variable, engine, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(variable, "true")  # what accelerate launch --use_deepspeed / its config file sets
    assert run_main(recipe("gpt2_classifier").main, missing_inputs(tmp_path)) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {engine} needs a GPU and this machine has none ({variable}=true")
    assert "accelerate launch --multi_gpu --num_processes N" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("RANK", "1")  # the other processes of the launch fail alike and say nothing
    assert run_main(recipe("gpt2_classifier").main, missing_inputs(tmp_path)) == 1
    assert capsys.readouterr().err == ""


@NO_GPU
def test_fsdp_from_a_shell_with_no_gpu_is_one_line(tmp_path):
    cmd = [sys.executable, str(REPO / "recipes" / "gpt2_classifier.py"), *missing_inputs(tmp_path)]
    env = {**os.environ, **CPU_ENV, "ACCELERATE_USE_FSDP": "true"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    assert done.stderr.startswith("error: FSDP needs a GPU and this machine has none")
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert not (tmp_path / "out").exists()


@NO_GPU
@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "config_file"])
def test_accelerate_launch_with_fsdp_on_cpus_ends_in_one_error_line(how, tmp_path):
    """``accelerate launch --use_fsdp --num_processes 2`` (or configs/fsdp.yaml) on CPUs: the two processes
    stop at once with one ``error:`` line (the main process's) and no traceback of theirs, nothing written.
    The launcher itself then reports that its children failed (torch's ChildFailedError summary); that
    report is the launcher's, and hf_spam runs only inside the children."""
    engine = ["--use_fsdp", "--num_machines", "1", *COMMON] if how == "flag" else [
        "--config_file", str(REPO / "configs" / "fsdp.yaml")
    ]  # fmt: skip
    cmd = [*LAUNCH, *engine, "--num_processes", "2", str(REPO / "recipes" / "gpt2_classifier.py"),
           *missing_inputs(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **CPU_ENV}, timeout=600)
    assert done.returncode == 1
    ours = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and ours[0].startswith("error: FSDP needs a GPU"), done.stderr[-3000:]
    assert "[rank" not in done.stderr and "no available devices" not in done.stderr  # no child traceback
    assert not (tmp_path / "out").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_machines(
    script: str,
    args: list[str],
    env: dict[str, str],
    machines: int = 2,
    machine_args: list[list[str]] | None = None,
    config: bool = False,
) -> list[subprocess.CompletedProcess]:
    """``script`` on ``machines`` loopback "machines" (one process each), or on one machine with two
    processes (``machines=1``); ``machine_args``: extra flags per machine; ``config``: the machines' setup
    from configs/cpu_cluster.yaml instead of flags."""
    recipe_path = str(REPO / "recipes" / script)
    if machines == 1:
        cmd = [*LAUNCH, "--multi_gpu", "--num_processes", "2", "--num_machines", "1", *COMMON, recipe_path]
        return [subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=900)]
    port = str(free_port())
    running = []
    for rank in range(machines):
        setup = ["--config_file", str(REPO / "configs" / "cpu_cluster.yaml")] if config else [
            "--multi_gpu", "--num_machines", str(machines), "--num_processes", str(machines), *COMMON
        ]  # fmt: skip
        cmd = [*LAUNCH, *setup, "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
               "--main_process_port", port, recipe_path, *args,
               *(machine_args[rank] if machine_args else [])]  # fmt: skip
        running.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    done = []
    for process in running:
        out, err = process.communicate(timeout=900)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def succeeded(done: list[subprocess.CompletedProcess]) -> None:
    for machine, result in enumerate(done):
        assert result.returncode == 0, f"machine {machine}:\n{result.stderr[-3000:]}"


def run_files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_two_machines_train_as_two_processes_on_one_and_resume(
    tiny_gpt2_dir, gpt2_tokenizer_dir, sms_file, tmp_path
):
    """The GPT-2 recipe on two loopback machines gives the metrics of two processes on one machine (same
    seed), writes the run folder once (the same files, one RNG state per process in each checkpoint), and
    resumes from a checkpoint the two machines wrote to the same result."""
    args = ["--model", str(tiny_gpt2_dir), "--weights", "random", "--tokenizer", str(gpt2_tokenizer_dir),
            "--data_source", str(sms_file), "--output_dir", str(tmp_path), "--max_train_samples", "40",
            "--max_eval_samples", "12", "--num_epochs", "2", "--eval_every", "0",
            "--trainable", "all"]  # fmt: skip
    env = {**os.environ, **CPU_ENV, "HF_SPAM_CACHE": str(tmp_path / "cache")}
    succeeded(launch_machines("gpt2_classifier.py", [*args, "--run_name", "one"], env, machines=1))
    succeeded(launch_machines("gpt2_classifier.py", [*args, "--run_name", "two"], env))
    one, two = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two"))
    assert one["num_processes"] == two["num_processes"] == 2
    assert two["training"]["details"]["optimizer_steps"] == one["training"]["details"]["optimizer_steps"] == 4
    for split, found in one["splits"].items():
        assert two["splits"][split]["loss"] == pytest.approx(found["loss"], abs=1e-6)
        assert two["splits"][split]["confusion_matrix"] == found["confusion_matrix"]
    history = [json.loads((tmp_path / run / "history.json").read_text()) for run in ("one", "two")]
    assert [h["val_loss"] for h in history[1]] == pytest.approx([h["val_loss"] for h in history[0]], abs=1e-6)
    files = run_files(tmp_path / "two")
    assert files == run_files(tmp_path / "one")
    assert {f.rsplit("/", 1)[-1] for f in files if "random_states" in f} == {
        "random_states_0.pkl", "random_states_1.pkl",
    }  # fmt: skip
    assert not list(tmp_path.glob(".hf_spam-shared-*"))  # the shared-folder check cleaned up after itself
    checkpoint = tmp_path / "two" / "checkpoints" / "step_0000002"
    resume = [*args, "--resume_from_checkpoint", str(checkpoint)]
    succeeded(launch_machines("gpt2_classifier.py", resume, env, config=True))  # configs/cpu_cluster.yaml
    resumed = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for split, found in two["splits"].items():
        assert resumed["splits"][split]["loss"] == pytest.approx(found["loss"], abs=1e-6)
        assert resumed["splits"][split]["confusion_matrix"] == found["confusion_matrix"]


@pytest.mark.slow
def test_bert_lora_on_two_machines_shares_the_frozen_prefix_cache(tiny_bert_dir, sms_file, tmp_path):
    """The BERT recipe with a LoRA adapter on the top block: block 0 stays frozen, so each machine's process
    computes its share of the frozen-prefix cache and both read both shares; the adapter is saved once."""
    args = ["--model", str(tiny_bert_dir), "--data_source", str(sms_file), "--output_dir", str(tmp_path),
            "--run_name", "lora", "--max_train_samples", "40", "--max_eval_samples", "12",
            "--num_epochs", "1", "--trainable", "lora", "--lora_layers", "1", "--dropout", "0",
            "--learning_rate", "1e-3"]  # fmt: skip
    env = {**os.environ, **CPU_ENV, "HF_SPAM_CACHE": str(tmp_path / "cache")}
    succeeded(launch_machines("bert_classifier.py", args, env))
    metrics = json.loads((tmp_path / "lora" / "metrics.json").read_text())
    cache = metrics["training"]["details"]["frozen_prefix_cache"]
    assert metrics["num_processes"] == 2 and cache["used"] and cache["examples_reused"] == 0
    shards = sorted(Path(cache["store"]).glob("shard-*.safetensors"))
    shares = [len(json.loads(safe_open(shard, "pt").metadata()["keys"])) for shard in shards]
    assert len(shares) == 2 and min(shares) > 0  # one share per machine's process, both read by both
    assert sum(shares) == cache["examples_computed"]
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert (
        metrics["splits"]["test"]["n"] == 12
        and sum(map(sum, metrics["splits"]["test"]["confusion_matrix"])) == 12
    )


@pytest.mark.slow
def test_machines_that_do_not_share_the_output_dir_are_refused(tiny_gpt2_dir, sms_file, tmp_path):
    """Each "machine" given its own --output_dir stands for two hosts with local disks: refused in one line
    before anything loads (checkpoints would otherwise fail, or hang, at the first save)."""
    args = ["--model", str(tiny_gpt2_dir), "--data_source", str(sms_file), "--run_name", "r"]
    own = [["--output_dir", str(tmp_path / "machine0")], ["--output_dir", str(tmp_path / "machine1")]]
    done = launch_machines("gpt2_classifier.py", args, {**os.environ, **CPU_ENV}, machine_args=own)
    assert [result.returncode for result in done] == [1, 1]
    errors = [[line for line in r.stderr.splitlines() if line.startswith("error:")] for r in done]
    assert errors[1] == [] and len(errors[0]) == 1, done[0].stderr[-3000:]
    assert f"--output_dir {tmp_path / 'machine0'} is not shared by the machines (process 1 on" in errors[0][0]
    assert list((tmp_path / "machine0").iterdir()) == []  # the marker is gone, nothing else was written


def test_every_shipped_accelerate_config_loads_and_is_documented():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {"one_gpu": "NO", "many_gpus": "MULTI_GPU", "many_machines": "MULTI_GPU",
                "cpu_cluster": "MULTI_GPU", "fsdp": "FSDP"}  # fmt: skip
    found = {
        path.stem: load_config_from_file(str(path)) for path in sorted((REPO / "configs").glob("*.yaml"))
    }
    assert {name: str(config.distributed_type.value) for name, config in found.items()} == expected
    assert found["fsdp"].fsdp_config["fsdp_version"] == 2
    assert found["many_machines"].num_machines == found["cpu_cluster"].num_machines == 2
    page = (REPO / "docs" / "distributed.md").read_text()
    assert all(f"configs/{name}.yaml" in page for name in expected)
