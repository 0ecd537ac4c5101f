"""Training-step speed: our GPT2 against transformers' GPT2LMHeadModel, side by side in one process.

One step = forward, the same cross-entropy on the logits, backward, zero_grad. Both models hold the same
weights, run in training mode (dropout on), and alternate step by step so that machine noise hits both
alike. Prints per-model median step time, the median of the per-pair ratios (transformers' time / ours),
and the peak memory a training step adds on top of the loaded model.

    python bench/gpt2_step.py                      # gpt2 (124M), batch 8 x 128, float32 on CPU
    python bench/gpt2_step.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from hf_spam import GPT2
from hf_spam.outputs import device_description


def build(size: str, device: str, dtype: torch.dtype, which: str = "both") -> dict[str, torch.nn.Module]:
    """The models to compare, on ``device`` in training mode; transformers' holds a copy of our weights."""
    torch.manual_seed(0)
    ours = GPT2.from_config(size)
    models = {"ours": ours, "transformers": copy.deepcopy(ours).to_transformers()}
    return {
        name: m.to(device=device, dtype=dtype).train()
        for name, m in models.items()
        if which in (name, "both")
    }


def make_step(model: torch.nn.Module, is_ours: bool, ids: torch.Tensor):
    def step() -> None:
        logits = model(ids) if is_ours else model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def timed(step, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory_mb(args: argparse.Namespace, which: str) -> float:
    """Peak memory above the loaded model during two training steps (activations, gradients, logits).

    CUDA: peak allocated. CPU: peak RSS in a fresh process holding only that model (Linux's VmHWM,
    reset through /proc/self/clear_refs after the model is built).
    """
    if args.device == "cpu":
        cmd = [sys.executable, __file__, "--_peak", which, "--size", args.size]
        cmd += ["--batch", str(args.batch), "--seq", str(args.seq), "--dtype", args.dtype]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return float(out.strip().splitlines()[-1])
    model = build(args.size, args.device, getattr(torch, args.dtype), which)[which]
    ids = torch.randint(0, 50257, (args.batch, args.seq), device=args.device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        make_step(model, which == "ours", ids)()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child_peak(args: argparse.Namespace) -> None:
    model = build(args.size, "cpu", getattr(torch, args.dtype), args._peak)[args._peak]
    ids = torch.randint(0, 50257, (args.batch, args.seq))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter
    base = rss_kib("VmRSS")
    for _ in range(2):
        make_step(model, args._peak == "ours", ids)()
    print((rss_kib("VmHWM") - base) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="gpt2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (GPU default)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--_peak", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if args._peak:
        return child_peak(args)

    dtype = getattr(torch, args.dtype)
    models = build(args.size, args.device, dtype)
    ids = torch.randint(0, 50257, (args.batch, args.seq), device=args.device)
    steps = {name: make_step(model, name == "ours", ids) for name, model in models.items()}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.steps):
        order = list(steps) if i % 2 == 0 else list(reversed(steps))  # alternate who goes first
        for name in order:
            times[name].append(timed(steps[name], args.device))
    ratios = [t / o for o, t in zip(times["ours"], times["transformers"], strict=True)]
    result = {
        "size": args.size,
        "batch": args.batch,
        "seq": args.seq,
        "dtype": args.dtype,
        "device": device_description(torch.device(args.device)),
        "torch": torch.__version__,
        "median_step_s": {name: statistics.median(t) for name, t in times.items()},
        "median_speedup_ours_vs_transformers": statistics.median(ratios),
    }
    del models, steps
    result["peak_memory_above_model_mb"] = {name: peak_memory_mb(args, name) for name in times}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
