"""Epoch time by padding strategy: the book's longest_in_dataset against dynamic padding (+ length grouping).

Same model, same data (SMS, book split), same optimizer; the strategies alternate epoch by epoch in one
process so machine noise hits them alike. Each epoch is forward + loss + backward + AdamW step over every
training batch (batch 8, drop_last, shuffled). Prints per-strategy median epoch seconds, padded tokens per
epoch, and the median of the paired ratios longest_in_dataset / strategy.

    python bench/padding_epoch.py --data_source ../shared/data/sms_spam/SMSSpamCollection \
        --tokenizer ../shared/models/gpt2-tokenizer            # gpt2 124M, random weights, last_block
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from hf_spam import GPT2Config, load_tokenizer
from hf_spam.data import load_sms_spam, longest_length, make_dataloader, split, tokenize
from hf_spam.models.classifier import GPT2Classifier
from hf_spam.models.trainable import set_trainable
from hf_spam.run_folder import device_description
from hf_spam.training.trainer import optimizer_for

STRATEGIES = {
    "longest_in_dataset": {"padding": "longest_in_dataset", "group_by_length": False},
    "dynamic": {"padding": "dynamic", "group_by_length": False},
    "dynamic+grouped": {"padding": "dynamic", "group_by_length": True},
}


def epoch(model, optimizer, loader) -> tuple[float, int, int]:
    """Seconds for one training epoch, padded tokens and real tokens seen."""
    padded = real = 0
    start = time.perf_counter()
    for batch in loader:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        F.cross_entropy(logits, batch["labels"]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        padded += batch["input_ids"].numel()
        real += int(batch["attention_mask"].sum())
    return time.perf_counter() - start, padded, real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_source", default=None, help="SMSSpamCollection file (default: download)")
    parser.add_argument("--tokenizer", default="gpt2")
    parser.add_argument("--size", default="gpt2")
    parser.add_argument(
        "--n_layers", type=int, default=None, help="fewer layers than the size has (smoke runs)"
    )
    parser.add_argument("--trainable", default="last_block")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="epochs per strategy")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.tokenizer)
    train = tokenize(split(load_sms_spam(args.data_source), "book", seed=args.seed), tokenizer)["train"]
    layers = {"n_layers": args.n_layers} if args.n_layers else {}
    model = GPT2Classifier(GPT2Config.from_name(args.size, dropout=0.0, **layers), 2).train()
    set_trainable(model, args.trainable)
    optimizer = optimizer_for(model, 5e-5, 0.1)
    loaders = {
        name: make_dataloader(
            train, tokenizer, args.batch_size, shuffle=True, seed=args.seed, drop_last=True, **kw
        )
        for name, kw in STRATEGIES.items()
    }
    seconds: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    tokens: dict[str, tuple[int, int]] = {}
    for repeat in range(args.repeats):
        order = list(STRATEGIES) if repeat % 2 == 0 else list(reversed(STRATEGIES))
        for name in order:
            elapsed, padded, real = epoch(model, optimizer, loaders[name])
            seconds[name].append(elapsed)
            tokens[name] = (padded, real)
            print(f"repeat {repeat} {name}: {elapsed:.1f} s", flush=True)
    base = seconds["longest_in_dataset"]
    result = {
        "model": f"{args.size} {layers} (random weights, trainable={args.trainable})",
        "data": f"SMS book split: {len(train)} training examples, longest {longest_length(train)} tokens",
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "device": device_description(torch.device("cpu")),
        "median_epoch_seconds": {name: statistics.median(s) for name, s in seconds.items()},
        "padded_tokens_per_epoch": {name: t[0] for name, t in tokens.items()},
        "real_tokens_per_epoch": {name: t[1] for name, t in tokens.items()},
        "median_speedup_vs_longest_in_dataset": {
            name: statistics.median(b / s for b, s in zip(base, times, strict=True))
            for name, times in seconds.items()
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
