"""One run, several processes (``accelerate launch``): which device, and decisions taken once for all.

:func:`on_main_process` runs a check on the main process alone and gives every process its answer or
its user error, so processes cannot race (one seeing a run folder another just made) and all fail alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import broadcast_object_list, is_mps_available, is_xpu_available

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
