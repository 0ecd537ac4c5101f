"""In-context scoring, three ways, in one process on the same prompts: does reusing the prefix pay, and
does batching by length?

k = 8 balanced random demonstrations (seeded) from the SMS training split; every test message's label
words scored (:func:`hf_spam.in_context.scoring.score_prompts`) as

* ``full``:    the full prompt (instruction + demonstrations + message) recomputed for every message, one
  message at a time;
* ``prefix``:  the shared prefix (instruction + demonstrations) run once, its key/value cache reused for
  every message, one message at a time;
* ``batched``: as ``prefix``, messages sorted by length and scored ``--batch_size`` at a time.

Printed per mode: seconds (the prefix's own forward included, and apart), forward passes, token positions
computed, queries per second, the ratio to ``full`` (in all, and less the one-time prefix forward: what
each further message costs) and to the previous mode, the largest score difference to
``full`` and the test accuracy of the raw label-word scores (the same in every mode). The 1-minute load
average before and after each mode is printed too: on a shared machine compare ratios only where it is
steady.

    python bench/in_context.py --model ../models/SmolLM2-135M-Instruct \\
        --data_source ../shared/data/sms_spam/SMSSpamCollection
    python bench/in_context.py --model ../models/SmolLM2-135M-Instruct --max_queries 8 \\
        --data_source ../shared/data/sms_spam/SMSSpamCollection          # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from hf_spam.cli import configure_logging
from hf_spam.data import DataArguments, load_splits
from hf_spam.in_context.arguments import InContextArguments
from hf_spam.in_context.calibration import label_log_probs
from hf_spam.in_context.decoder import context_length, load_decoder
from hf_spam.in_context.prompts import PromptBuilder
from hf_spam.in_context.run import build_classifier, label_words, split_texts
from hf_spam.in_context.scoring import ScoringStats, score_prompts
from hf_spam.in_context.templates import load_template
from hf_spam.run_folder import device_description

MODES = {  # name: (reuse the prefix, batch by length)
    "full": (False, False),
    "prefix": (True, False),
    "batched": (True, True),
}


def run_mode(name: str, lm, prompts, answers, batch_size: int) -> tuple[dict, torch.Tensor]:
    """Score every prompt as ``name`` says, timed from scratch (no prefix cached before); row and scores."""
    reuse, batched = MODES[name]
    stats, load_before = ScoringStats(), os.getloadavg()[0]
    start = time.perf_counter()
    scores = score_prompts(lm, prompts, answers, batch_size if batched else 1, reuse_prefix=reuse,
                           group_by_length=batched, stats=stats)  # fmt: skip
    seconds = time.perf_counter() - start
    row = {"mode": name, "seconds": seconds, "prefix_seconds": stats.prefix_seconds,
           "forwards": stats.forwards, "tokens": stats.tokens,
           "queries_per_second": len(prompts) / seconds,
           "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip
    return row, scores


def per_message(row: dict) -> float:
    """Seconds of a mode less its one-time prefix forward: what each further message costs."""
    return row["seconds"] - row["prefix_seconds"]


def table(rows: list[dict]) -> str:
    """The printed comparison (markdown)."""
    lines = [
        "| mode | seconds | of which the prefix | forwards | token positions | queries/s | vs full "
        "| vs full, per message | vs previous | max score diff | test acc | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        previous = f"{rows[i - 1]['seconds'] / r['seconds']:.2f}x" if i else "-"
        load = r["load_average_1min"]
        lines.append(
            f"| {r['mode']} | {r['seconds']:.1f} | {r['prefix_seconds']:.1f} | {r['forwards']} "
            f"| {r['tokens']} | {r['queries_per_second']:.2f} | {rows[0]['seconds'] / r['seconds']:.2f}x "
            f"| {per_message(rows[0]) / per_message(r):.2f}x | {previous} | {r['max_score_difference']:.2e} "
            f"| {100 * r['test_accuracy']:.2f} % | {load[0]} / {load[1]} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", required=True, help="a decoder folder or hub id")
    parser.add_argument("--implementation", default="transformers", choices=["transformers", "hf_spam"])
    parser.add_argument("--weights", default="pretrained", choices=["pretrained", "random"])
    parser.add_argument("--tokenizer", help="default: the model's")
    parser.add_argument("--data_source", help="the SMS Spam Collection file (default: download it)")
    parser.add_argument("--k", type=int, default=8, help="demonstrations (balanced, random, seeded)")
    parser.add_argument("--batch_size", type=int, default=16, help="messages per forward in the batched mode")
    parser.add_argument("--seed", type=int, default=123, help="the split's and the demonstrations' seed")
    parser.add_argument("--max_queries", type=int, help="only the first N test messages (a quick check)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--bench_output", default="outputs/bench-in-context", help="result.json goes here")
    args = parser.parse_args(argv)
    configure_logging()
    torch.set_num_threads(os.cpu_count() or 1)
    splits, _ = load_splits(DataArguments(data_source=args.data_source), args.seed)
    id2label = dict(enumerate(splits["train"].features["label"].names))
    icl = InContextArguments(
        model=args.model, implementation=args.implementation, weights=args.weights, tokenizer=args.tokenizer,
        k=args.k, seed=args.seed, batch_size=args.batch_size,
    )  # fmt: skip
    lm, tokenizer = load_decoder(icl.model, icl.implementation, icl.weights, icl.tokenizer, icl.seed)
    builder = PromptBuilder(
        load_template(None, tokenizer), tokenizer, label_words(None, id2label), context_length(lm)
    )
    classifier = build_classifier(icl, lm, tokenizer, builder, id2label, split_texts(splits["train"]),
                                  splits["train"]["label"])  # fmt: skip
    test = splits["test"].select(range(min(args.max_queries or len(splits["test"]), len(splits["test"]))))
    prompts = classifier.prompts(split_texts(test))
    labels = torch.tensor(test["label"])
    rows, reference = [], None
    for name in args.modes:
        row, scores = run_mode(name, lm, prompts, builder.answers, args.batch_size)
        reference = scores if reference is None else reference
        row["max_score_difference"] = float((scores - reference).abs().max())
        row["test_accuracy"] = float((label_log_probs(scores).argmax(-1) == labels).double().mean())
        rows.append(row)
    device = device_description(next(lm.parameters()).device)
    lengths = [len(p) for p in prompts]
    result = {
        "device": device, "model": args.model, "k": args.k, "queries": len(prompts),
        "shared_prefix_tokens": len(prompts[0].prefix), "prompt_tokens_mean": sum(lengths) / len(lengths),
        "prompt_tokens_max": max(lengths), "batch_size": args.batch_size, "rows": rows,
        "prompts_trimmed": sum(p.dropped > 0 or p.truncated for p in prompts),
        "command": sys.argv,
    }  # fmt: skip
    out = Path(args.bench_output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"device: {device}; {args.model}, k = {args.k}, {len(prompts)} test messages; prompt tokens: "
          f"shared prefix {result['shared_prefix_tokens']}, mean {result['prompt_tokens_mean']:.0f}, "
          f"max {result['prompt_tokens_max']}; {result['prompts_trimmed']} trimmed to fit")  # fmt: skip
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
