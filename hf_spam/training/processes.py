"""One run, several processes (``accelerate launch``): which device, and decisions taken once for all.

:func:`on_main_process` runs a check on the main process alone and gives every process its answer or
its user error, so processes cannot race (one seeing a run folder another just made) and all fail alike.
:func:`check_launch` refuses, before anything loads, a launch that asks for FSDP or DeepSpeed where they
cannot run; :func:`check_shared_folder` makes sure every machine of a multi-node run sees the run folder.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import accelerate.utils
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, gather_object, is_mps_available, is_xpu_available

from ..errors import LaunchError

logger = logging.getLogger(__name__)
T = TypeVar("T")

# how `accelerate launch` (its flags, or the distributed_type of its config file) tells the script to shard
# the model: an environment variable per engine -> (engine, launch flag, config's distributed_type)
SHARDING_ENGINES = {
    "ACCELERATE_USE_FSDP": ("FSDP", "--use_fsdp", "FSDP"),
    "ACCELERATE_USE_DEEPSPEED": ("DeepSpeed", "--use_deepspeed", "DEEPSPEED"),
    "ACCELERATE_USE_MEGATRON_LM": ("Megatron-LM", "--use_megatron_lm", "MEGATRON_LM"),
}
CPU_INSTEAD = (
    "on CPUs use DDP instead: accelerate launch --multi_gpu --num_processes N (gloo; with --num_machines, "
    "--machine_rank and --main_process_ip across machines, see configs/cpu_cluster.yaml)"
)
# the devices accelerate's FSDP and DeepSpeed plugins accept besides CUDA (not the CPU, not Apple's MPS)
_SHARDING_DEVICES = ("xpu", "npu", "mlu", "musa", "hpu", "sdaa", "neuron")


def has_accelerator() -> bool:
    """True when a GPU (CUDA, MPS or XPU) is there for accelerate to use."""
    return torch.cuda.is_available() or is_mps_available() or is_xpu_available()


def warn_if_cpu_underused(accelerator: Accelerator) -> None:
    """Say so when training on CPU with fewer threads than cores (``accelerate launch`` defaults to one)."""
    cores = (os.cpu_count() or 1) // accelerator.num_processes
    if accelerator.device.type == "cpu" and torch.get_num_threads() < cores:
        logger.warning(
            "training on CPU with %d thread(s) per process while %d cores are free: pass "
            "--num_cpu_threads_per_process %d to accelerate launch (its default is 1)",
            torch.get_num_threads(), cores, cores,
        )  # fmt: skip


def on_main_process(process: PartialState, check: Callable[[], T]) -> T:
    """Run ``check`` on the main process alone and give every process its result, or raise its user error
    (a ``ValueError``/``OSError`` such as :class:`~hf_spam.errors.HubError` or ``FileExistsError``) on
    every process."""
    outcome: list[Any] = [None, None]
    if process.is_main_process:
        try:
            outcome = [check(), None]
        except (ValueError, OSError) as err:
            outcome = [None, err]
    result, error = broadcast_object_list(outcome)
    if error is not None:
        raise error
    return result


def requested_engine() -> str | None:
    """The environment variable by which ``accelerate launch`` asked for FSDP, DeepSpeed or Megatron-LM
    (``ACCELERATE_USE_FSDP`` ...), or None for plain data parallelism. accelerate acts on ``true``."""
    return next((name for name in SHARDING_ENGINES if os.environ.get(name, "").lower() == "true"), None)


def sharding_device_available() -> bool:
    """True when there is a device accelerate shards on (CUDA, XPU, NPU, ...); the CPU and MPS are not."""
    checks = (getattr(accelerate.utils, f"is_{name}_available", None) for name in _SHARDING_DEVICES)
    return torch.cuda.is_available() or any(check() for check in checks if check is not None)


def check_launch() -> None:
    """Refuse, in one line and before any data or model loads, a launch asking for what cannot run: FSDP,
    DeepSpeed or Megatron-LM with no GPU (they fail in every process after start-up otherwise), and DeepSpeed
    or Megatron-LM anywhere: hf_spam's loop does not gather their sharded models (a ZeRO-3 model would be
    saved empty), FSDP does that job. Raises :class:`~hf_spam.errors.LaunchError`."""
    variable = requested_engine()
    if variable is None:
        return
    engine, flag, config_type = SHARDING_ENGINES[variable]
    origin = f"{variable}=true: accelerate launch {flag}, or a config with distributed_type: {config_type}"
    if not sharding_device_available():
        raise LaunchError(f"{engine} needs a GPU and this machine has none ({origin}); {CPU_INSTEAD}")
    if engine != "FSDP":
        raise LaunchError(
            f"hf_spam's recipes do not run under {engine} ({origin}): to shard the model across GPUs use "
            "FSDP, accelerate launch --use_fsdp --fsdp_version 2 (see configs/fsdp.yaml)"
        )


def several_machines() -> bool:
    """True when the launch spans more than one machine (torchrun's ``WORLD_SIZE`` > ``LOCAL_WORLD_SIZE``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))


def check_shared_folder(process: PartialState, folder: Path) -> None:
    """With several machines, every process must see ``folder`` (the run folder is written by the main
    process; checkpoints and the best weights are written by one process and read by all): the main process
    writes a marker there, every process looks for it. A :class:`~hf_spam.errors.LaunchError` names the
    processes (and hosts) that do not see it."""
    if process.num_processes == 1 or not several_machines():
        return
    marker = [f".hf_spam-shared-{uuid.uuid4().hex}" if process.is_main_process else None]
    if process.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / marker[0]).touch()
    name = broadcast_object_list(marker)[0]
    seen = gather_object([(process.process_index, socket.gethostname(), (folder / name).is_file())])
    process.wait_for_everyone()
    if process.is_main_process:
        (folder / name).unlink(missing_ok=True)
    blind = [f"process {index} on {host}" for index, host, found in seen if not found]
    if blind:
        raise LaunchError(
            f"--output_dir {folder} is not shared by the machines ({', '.join(blind)} cannot see what the "
            "main process writes there): put it on a file system every machine mounts (NFS, ...)"
        )
