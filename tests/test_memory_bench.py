"""bench/memory.py: its parameter counts (which decide what is run) and one real row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_spam import GPT2Config
from hf_spam.models.adapters import AdapterArguments, apply_adapter
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.trainable import parameter_counts, set_trainable

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import memory  # noqa: E402  (bench/ is not a package)

sys.path.remove(str(BENCH))


@pytest.mark.parametrize("size", ["gpt2", "gpt2-xl"])
@pytest.mark.parametrize("policy", ["all", "last_block", "lora"])
def test_the_estimates_count_the_parameters_of_the_real_model(size, policy):
    with torch.device("meta"):  # the sizes only: no memory, no init time
        model = GPT2Classifier(GPT2Config.from_name(size), num_labels=2)
        if policy == "lora":
            model = apply_adapter(
                model, "lora", AdapterArguments(lora_r=memory.LORA_R, lora_alpha=memory.LORA_R)
            )
        else:
            set_trainable(model, policy)
    counts = parameter_counts(model)
    assert memory.parameter_counts(size, policy) == (counts["total"], counts["trainable"])


def test_the_largest_full_fine_tune_does_not_fit_24_gib():
    row = memory.Row("gpt2-xl", "all", checkpointing=True, bf16=False, batch=1, seq=32, steps=1, device="cpu")
    assert memory.estimated_bytes(row) > 24 * memory.GiB


@pytest.mark.slow
def test_a_row_runs_and_a_row_over_the_memory_allowed_is_not_run(tmp_path):
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(BENCH / "memory.py"), "--device", "cpu", "--sizes", "gpt2", "gpt2-xl",
           "--policies", "all", "--checkpointing", "on", "--precisions", "fp32", "--seq", "8",
           "--max_gib", "8", "--json", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    small, xl = json.loads(out.read_text())["rows"]
    assert small["size"] == "gpt2" and small["checkpointing"] and "not_run" not in small
    # the full fine-tune holds its gradients and AdamW's moments too: ~3x the weights more
    assert small["peak_mb"] > small["loaded_mb"] + 2.5 * 4 * small["trained_parameters"] / 2**20
    assert xl["not_run"].startswith("needs ~2") and xl["not_run"].endswith(("GiB allowed", "GiB free"))
