"""Memory and step time of fine-tuning GPT-2 124M -> 1.5B (random weights): the figure to choose a machine by.

Every size (gpt2, gpt2-medium, gpt2-large, gpt2-xl) x what trains (``all``, ``last_block``, ``lora`` r=16 on
every projection) x activation checkpointing (off / on, ``--gradient_checkpointing``) x precision (float32,
bfloat16 autocast as ``--mixed_precision bf16``), on the device it runs on. One row = our GPT2Classifier
with AdamW over the trained parameters (fused, as the recipes), batches of ``--batch`` x ``--seq`` tokens,
``--steps`` training steps (forward, loss, backward, optimizer step) timed one by one.

The rows of one size and policy run in a fresh process, on one model built once (the checkpointing-off rows
first), each with a fresh optimizer; between rows the gradients and the optimizer state are freed and the
peak counter reset. Peak memory: CUDA's ``max_memory_allocated``; on CPUs the peak resident set of the
process (Linux ``VmHWM``). ``loaded`` is the memory before the first step (the weights, and on CPUs the
process itself), ``peak`` the highest during the steps: the weights, the gradients, AdamW's two moments
(allocated at the first step) and the activations the backward keeps. Before a row runs, its peak is
estimated from the parameter counts and the activation sizes; a row that would not fit in the free memory
(or whose process passes ``--timeout``) is reported as not run, with the reason.

    python bench/memory.py                 # the full table: on CPUs batch 1 x 32 tokens, 1 step per row
    python bench/memory.py --sizes gpt2 --policies lora      # a quick look
    python bench/memory.py --device cuda   # on a GPU: batch 8 x 512 tokens, the median of 9 steps
    python bench/memory.py --json docs/bench/memory_cpu.json --markdown docs/bench/memory_cpu.md
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from hf_spam import GPT2Config
from hf_spam.models.gpt2 import GPT2_SIZES

SIZES = tuple(GPT2_SIZES)
POLICIES = ("all", "last_block", "lora")
LORA_R = 16
GiB = 2**30


@dataclass
class Row:
    """One configuration to measure."""

    size: str
    policy: str
    checkpointing: bool
    bf16: bool
    batch: int
    seq: int
    steps: int
    device: str


def parameter_counts(size: str, policy: str) -> tuple[int, int]:
    """Total and trained parameters of GPT2Classifier(size) (2 labels) under ``policy``, from the config."""
    c = GPT2Config.from_name(size)
    d, layers = c.emb_dim, c.n_layers
    block = 12 * d * d + 13 * d  # qkv, output, MLP (4x) weights and biases, two LayerNorms
    total = c.vocab_size * d + c.context_length * d + layers * block + 2 * d + 2 * d
    head = 2 * d + 2 * d  # score (2 labels) + final LayerNorm
    if policy == "all":
        return total, total
    if policy == "last_block":
        return total, block + head
    lora = LORA_R * (4 * d + 2 * d + 5 * d + 5 * d) * layers  # A and B of c_attn, c_proj, c_fc, mlp.c_proj
    return total + lora, lora + 2 * d


def estimated_bytes(row: Row) -> int:
    """A generous estimate of the row's peak: fp32 weights, fp32 gradients and AdamW moments of the trained
    parameters, autocast's bfloat16 weight copies, and the activations the backward keeps (about 34 values
    per token and width per block, Korthikanti et al. 2022; only blocks in the backward; one block's plus
    each block's input with checkpointing), plus the process itself."""
    c = GPT2Config.from_name(row.size)
    total, trained = parameter_counts(row.size, row.policy)
    weights = 4 * total + 12 * trained + (2 * total if row.bf16 else 0)
    element = 2 if row.bf16 else 4
    per_block = 34 * row.batch * row.seq * c.emb_dim * element
    in_backward = c.n_layers if row.policy != "last_block" else 1
    if row.checkpointing:
        activations = per_block + in_backward * row.batch * row.seq * c.emb_dim * 4
    else:
        activations = in_backward * per_block
    overhead = 1 * GiB if row.device == "cpu" else 0  # the interpreter, torch, transformers
    return weights + activations + overhead


def free_bytes(device: str) -> int:
    """Memory a row may use: the GPU's free memory, or the machine's available RAM."""
    if device.startswith("cuda"):
        return torch.cuda.mem_get_info()[0]
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_mb(device: str, peak: bool) -> float:
    """Now (or the peak since the last reset): CUDA allocated, or this process's resident set on CPUs."""
    if device.startswith("cuda"):
        return (torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()) / 2**20
    return _rss_kib("VmHWM" if peak else "VmRSS") / 1024


def build(row: Row) -> torch.nn.Module:
    """The classifier on the device (random weights) with the row's trainable policy applied."""
    from hf_spam.models.adapters import AdapterArguments, apply_adapter
    from hf_spam.models.classifier import GPT2Classifier
    from hf_spam.models.trainable import set_trainable

    torch.manual_seed(0)
    with torch.device(row.device):
        model = GPT2Classifier(GPT2Config.from_name(row.size), num_labels=2)
    if row.policy == "lora":
        return apply_adapter(model, "lora", AdapterArguments(lora_r=LORA_R, lora_alpha=LORA_R)).train()
    set_trainable(model, row.policy)
    return model.train()


def release(device: str) -> None:
    """Give freed memory back (glibc keeps small freed blocks; CUDA's caching allocator keeps them all)."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: the peak resident set starts again from the current one


def measure(rows: list[Row]) -> list[dict]:
    """The rows of one size and policy, on one model built once (checkpointing-off rows first): for each, a
    fresh AdamW (as the recipes make it) and ``steps`` training steps; memory and times.
    Between rows the gradients and the optimizer are freed and the peak counter reset."""
    from hf_spam.models.gradient_checkpointing import enable_gradient_checkpointing
    from hf_spam.training.trainer import optimizer_for

    start = time.perf_counter()
    model = build(rows[0])
    built_s = time.perf_counter() - start
    device = torch.device(rows[0].device)
    gen = torch.Generator().manual_seed(0)
    results = []
    for row in sorted(rows, key=lambda r: r.checkpointing):
        if row.checkpointing:
            enable_gradient_checkpointing(model)
        ids = torch.randint(0, 50256, (row.batch, row.seq), generator=gen).to(device)
        labels = torch.randint(0, 2, (row.batch,), generator=gen).to(device)
        optimizer = optimizer_for(model, learning_rate=5e-5, weight_decay=0.1)

        def step(row: Row = row, ids: torch.Tensor = ids, labels: torch.Tensor = labels, optimizer=optimizer):
            if device.type == "cuda":
                torch.cuda.synchronize()
            begin = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=row.bf16):
                logits = model(input_ids=ids).logits
            F.cross_entropy(logits.float(), labels).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - begin

        release(row.device)
        loaded = memory_mb(row.device, peak=False)
        reset_peak(row.device)
        times = [step() for _ in range(row.steps)]
        results.append({
            **asdict(row), "loaded_mb": round(loaded), "peak_mb": round(memory_mb(row.device, peak=True)),
            "step_s": round(statistics.median(times[1:] or times), 3), "first_step_s": round(times[0], 3),
            "build_s": round(built_s, 1),
            "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        })  # fmt: skip
        del optimizer, step
    return results


def run_rows(rows: list[Row], timeout: float, max_gib: float | None = None) -> list[dict]:
    """Measure the rows of one size and policy in a fresh process (its own peak memory); a row whose estimate
    does not fit in the free memory (or in ``max_gib``) is not run."""
    free = free_bytes(rows[0].device)
    room, what = (
        (0.9 * free, "free") if max_gib is None or max_gib * GiB > 0.9 * free else (max_gib * GiB, "allowed")
    )
    results = [{**asdict(row), "estimated_gib": round(estimated_bytes(row) / GiB, 1)} for row in rows]
    for result in results:
        if result["estimated_gib"] * GiB > room:
            result["not_run"] = f"needs ~{result['estimated_gib']:.1f} GiB, {room / GiB:.1f} GiB {what}"
    fitting = [row for row, result in zip(rows, results, strict=True) if "not_run" not in result]
    found = measured(fitting, timeout) if fitting else {}
    for result in results:
        result.update(found.get(variant(result), {}))
    return results


def variant(row: dict) -> tuple[bool, bool]:
    return row["checkpointing"], row["bf16"]


def measured(rows: list[Row], timeout: float) -> dict[tuple[bool, bool], dict]:
    """The child process's results by (checkpointing, bf16); every row not run when the child failed."""
    cmd = [sys.executable, __file__, "--_rows", json.dumps([asdict(row) for row in rows])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {variant(asdict(row)): {"not_run": f"over --timeout {timeout:.0f} s"} for row in rows}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["killed"])[-1]
        return {variant(asdict(row)): {"not_run": f"failed: {last[:200]}"} for row in rows}
    return {variant(found): found for found in json.loads(done.stdout.strip().splitlines()[-1])}


def markdown(results: list[dict], header: dict) -> str:
    """The table: one line per row, memory in GiB, time per step in seconds."""
    lines = [
        f"{header['device']}; batch {header['batch']} x {header['seq']} tokens; step time: "
        + (
            f"median of {header['steps'] - 1} steps after the first"
            if header["steps"] > 1
            else "the first step (it also allocates AdamW's moments)"
        )
        + f"; torch {header['torch']}; load average at start {header['load_average']}",
        "",
        "| model | trains | checkpointing | precision | trained params | loaded GiB | peak GiB | step s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        what = [
            r["size"],
            r["policy"],
            "on" if r["checkpointing"] else "off",
            "bf16" if r["bf16"] else "fp32",
        ]
        if "not_run" in r:
            lines.append(f"| {' | '.join(what)} | | | | not run: {r['not_run']} |")
            continue
        figures = [f"{r['trained_parameters'] / 1e6:,.1f}M", f"{r['loaded_mb'] / 1024:.2f}",
                   f"{r['peak_mb'] / 1024:.2f}", f"{r['step_s']:.2f}"]  # fmt: skip
        lines.append(f"| {' | '.join(what + figures)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--checkpointing", nargs="+", default=["off", "on"], choices=("off", "on"))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: 1 on CPUs, 8 on a GPU")
    parser.add_argument(
        "--seq", type=int, default=None, help="tokens per row; default: 32 on CPUs, 512 on a GPU"
    )
    parser.add_argument(
        "--steps", type=int, default=None,
        help="training steps per row; the time is their median after the first (the first alone when 1); "
        "default: 1 on CPUs, 10 on a GPU",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1200, help="seconds one size and policy may take")
    parser.add_argument("--max_gib", type=float, default=None, help="run no row estimated above this")
    parser.add_argument("--json", default=None, help="also write the rows and settings to this file")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument("--_rows", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    args.batch, args.seq = args.batch or (8 if gpu else 1), args.seq or (512 if gpu else 32)
    args.steps = args.steps or (10 if gpu else 1)
    if args._rows:
        print(json.dumps(measure([Row(**row) for row in json.loads(args._rows)])))
        return
    from hf_spam.run_folder import device_description

    header = {"device": device_description(torch.device(args.device)), "batch": args.batch, "seq": args.seq,
              "steps": args.steps, "torch": torch.__version__,
              "load_average": [round(x, 1) for x in os.getloadavg()]}  # fmt: skip
    results = []
    for size, policy in itertools.product(args.sizes, args.policies):
        variants = itertools.product(args.checkpointing, args.precisions)
        shape = {"batch": args.batch, "seq": args.seq, "steps": args.steps, "device": args.device}
        rows = [Row(size, policy, ckpt == "on", precision == "bf16", **shape) for ckpt, precision in variants]
        for result in run_rows(rows, args.timeout, args.max_gib):
            results.append(result)
            print(json.dumps(result), flush=True)
    table = markdown(results, header)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": header, "rows": results}, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
