"""A fine-tuning recipe under accelerate's FSDP2 on CPUs (gloo), for tests/test_sharding.py.

accelerate runs FSDP only on an accelerator: on CPUs its state says MULTI_CPU and the FSDP plugin is never
used. This script, started by ``accelerate launch --multi_gpu --num_processes 2`` on CPUs, switches the
run's accelerator to accelerate's FSDP2 path (the same ``fully_shard``, DTensor parameters, sharded
checkpoints and state-dict gathering a GPU run uses; only the device differs), so that hf_spam's FSDP code
runs where no GPU is: the plugin completed for the model, the best weights gathered and loaded back, the
checkpoint written and resumed, the final model gathered and saved. It reaches into accelerate's state (no
public switch exists); the FSDP test on a GPU (tests/test_sharding.py) is the real one.

    accelerate launch --multi_gpu --num_processes 2 tests/fsdp_cpu_run.py gpt2_classifier ARGS...
"""

from __future__ import annotations

import importlib
import sys

from accelerate import Accelerator, FullyShardedDataParallelPlugin
from accelerate.state import PartialState
from accelerate.utils import DistributedType

import hf_spam.training.fine_tune as fine_tune
from hf_spam.cli import configure_logging, run_main

make_accelerator = fine_tune.make_accelerator


def fsdp2_on_cpu(train_args, run_dir) -> Accelerator:
    """The run's accelerator, switched to FSDP2 (what ``--use_fsdp --fsdp_version 2`` gives on a GPU)."""
    accelerator = make_accelerator(train_args, run_dir)
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
    return accelerator


if __name__ == "__main__":
    fine_tune.make_accelerator = fsdp2_on_cpu
    recipe = importlib.import_module(f"hf_spam.commands.{sys.argv[1]}")
    configure_logging()
    sys.exit(run_main(recipe.main, sys.argv[2:]))
