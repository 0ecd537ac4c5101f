"""Training-step speed: our GPT2 against transformers' GPT2LMHeadModel, side by side in one process.

One step = forward, the same cross-entropy on the logits, backward, zero_grad. Both models hold the same
weights, run in training mode (dropout on), and alternate step by step so that machine noise hits both
alike. Prints per-model median step time, the median of the per-pair ratios (transformers' time / ours),
and the peak memory a training step adds on top of the loaded model.

    python bench/gpt2_step.py                      # gpt2 (124M), batch 8 x 128, float32 on CPU
    python bench/gpt2_step.py --device cuda --dtype bfloat16
    python bench/gpt2_step.py --compile ours       # ours compiled (inductor) against eager transformers
    python bench/gpt2_step.py --compile both       # compiled against compiled
    python bench/gpt2_step.py --autocast           # both under bfloat16 autocast
    python bench/gpt2_step.py --head cls --trainable last_block   # the classifiers, right-padded rows

``--head cls`` compares our GPT2Classifier (last-token pooling) with GPT2ForSequenceClassification on
right-padded rows of seq/2 .. seq tokens. The first step of a compiled model (compilation; reused from
inductor's on-disk cache when the same graph was compiled before) is reported apart as ``first_step_s``.
Figures measured on the shared 2-core CPU (each with the load average it ran under) are in the README's
benchmark table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from hf_spam import GPT2
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.trainable import set_trainable
from hf_spam.run_folder import device_description


def build(args: argparse.Namespace, which: str = "both") -> dict[str, torch.nn.Module]:
    """The models to compare, on the device in training mode; transformers' holds a copy of our weights.

    ``--head cls``: our :class:`GPT2Classifier` and transformers' ``GPT2ForSequenceClassification``, both
    frozen by the same ``--trainable`` policy. ``--compile``: wrapped by ``torch.compile``.
    """
    torch.manual_seed(0)
    ours = GPT2.from_config(args.size)
    if args.head == "cls":
        ours = GPT2Classifier.from_gpt2(ours, num_labels=2)
    models = {"ours": ours, "transformers": copy.deepcopy(ours).to_transformers()}
    built = {}
    for name, model in models.items():
        if which not in (name, "both"):
            continue
        model = model.to(device=args.device, dtype=getattr(torch, args.dtype)).train()
        if args.head == "cls":
            set_trainable(model, args.trainable)
        if args.compile in (name, "both"):
            model = torch.compile(model, dynamic=True if args.dynamic else None)
        built[name] = model
    return built


def make_batch(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Random token ids; for ``--head cls`` right-padded rows of ``seq/2 .. seq`` tokens and labels."""
    gen = torch.Generator().manual_seed(0)
    if args.head == "lm":
        return {"input_ids": torch.randint(0, 50257, (args.batch, args.seq), generator=gen)}
    ids = torch.randint(0, 50256, (args.batch, args.seq), generator=gen)  # no end-of-text (= pad) inside
    lengths = torch.randint(args.seq // 2, args.seq + 1, (args.batch,), generator=gen)
    lengths[0] = args.seq  # the longest row sets the padded length, as dynamic padding does
    mask = (torch.arange(args.seq)[None, :] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, 50256)
    labels = torch.randint(0, 2, (args.batch,), generator=gen)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def make_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], args: argparse.Namespace):
    batch = {k: v.to(args.device) for k, v in batch.items()}
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    ids = batch["input_ids"]

    def step() -> None:
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.autocast):
            out = model(**inputs)
            logits = out if isinstance(out, torch.Tensor) else out.logits
        if "labels" in batch:
            loss = F.cross_entropy(logits.float(), batch["labels"])
        else:
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
        cmd = [sys.executable, __file__, "--_peak", which, *forwarded(args)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return float(out.strip().splitlines()[-1])
    model = build(args, which)[which]
    step = make_step(model, make_batch(args), args)
    step()  # a compiled model compiles here
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        step()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child_peak(args: argparse.Namespace) -> None:
    model = build(args, args._peak)[args._peak]
    step = make_step(model, make_batch(args), args)
    if args.compile in (args._peak, "both"):
        step()  # compile first: the compiler's own memory is not the step's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter
    base = rss_kib("VmRSS")
    for _ in range(2):
        step()
    print((rss_kib("VmHWM") - base) / 1024)


def forwarded(args: argparse.Namespace) -> list[str]:
    """The command-line options that define the measured step, for the peak-memory child process."""
    out = ["--size", args.size, "--batch", str(args.batch), "--seq", str(args.seq), "--dtype", args.dtype]
    out += ["--head", args.head, "--trainable", args.trainable, "--compile", args.compile]
    return out + ["--dynamic"] * args.dynamic + ["--autocast"] * args.autocast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="gpt2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (GPU default)")
    parser.add_argument("--head", choices=("lm", "cls"), default="lm", help="LM head or classifier")
    parser.add_argument("--trainable", choices=("all", "last_block"), default="all", help="--head cls only")
    parser.add_argument("--compile", choices=("none", "ours", "transformers", "both"), default="none")
    parser.add_argument("--dynamic", action="store_true", help="torch.compile(dynamic=True)")
    parser.add_argument("--autocast", action="store_true", help="bfloat16 autocast around the forward")
    parser.add_argument("--peak", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--_peak", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if args._peak:
        return child_peak(args)

    models = build(args)
    batch = make_batch(args)
    steps = {name: make_step(model, batch, args) for name, model in models.items()}
    first_step_s = {name: timed(step, args.device) for name, step in steps.items()}  # compiles if compiled
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
        "head": args.head if args.head == "lm" else f"cls ({args.trainable})",
        "compile": args.compile + (" (dynamic)" * args.dynamic),
        "autocast_bf16": args.autocast,
        "load_average": os.getloadavg(),
        "device": device_description(torch.device(args.device)),
        "torch": torch.__version__,
        "first_step_s": first_step_s,
        "median_step_s": {name: statistics.median(t) for name, t in times.items()},
        "median_speedup_ours_vs_transformers": statistics.median(ratios),
    }
    del models, steps
    if args.peak:
        result["peak_memory_above_model_mb"] = {name: peak_memory_mb(args, name) for name in times}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
