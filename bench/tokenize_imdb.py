"""Tokenise all 50,000 IMDB reviews with the GPT-2 fast tokenizer, cold (fresh cache) then cached.

    python bench/tokenize_imdb.py --source ../shared/data/imdb --tokenizer ../shared/models/gpt2-tokenizer

Prints seconds and rows/s for each pass and the machine it ran on. The cold pass writes the
tokenised arrow files into a fresh temporary cache folder; the cached pass asks for the same
thing again and must load them (``hf_spam.data.tokenize`` keys the cache by fingerprint).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import datasets

from hf_spam.data import load_imdb, resolve_max_length, tokenize
from hf_spam.data.tokenizer import load_tokenizer


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="../shared/data/imdb", help="IMDB folder (or hub id)")
    parser.add_argument("--tokenizer", default="../shared/models/gpt2-tokenizer")
    parser.add_argument("--max_length", type=int, default=None, help="default: the tokenizer's (1024)")
    parser.add_argument("--num_proc", type=int, default=None, help="processes for Dataset.map (default: 1)")
    args = parser.parse_args()
    datasets.disable_progress_bars()

    tokenizer = load_tokenizer(args.tokenizer)
    max_length = resolve_max_length(tokenizer, args.max_length)
    imdb, load_s = timed(load_imdb, args.source)
    rows = sum(len(part) for part in imdb.values())
    print(
        f"machine: {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
        f"usable cpus={len(os.sched_getaffinity(0))}, num_proc={args.num_proc or 1}, "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset (on)')}"
    )
    print(f"tokenizer: {type(tokenizer).__name__} (fast={tokenizer.is_fast}), max_length={max_length}")
    print(f"load + validate {rows} rows: {load_s:.2f} s")
    with tempfile.TemporaryDirectory() as cache_dir:
        tokens, cold_s = timed(
            tokenize, imdb, tokenizer, max_length, num_proc=args.num_proc, cache_dir=cache_dir
        )
        again, cached_s = timed(
            tokenize, imdb, tokenizer, max_length, num_proc=args.num_proc, cache_dir=cache_dir
        )
        files = sorted({f["filename"] for part in again.values() for f in part.cache_files})
        size_mb = sum(os.path.getsize(f) for f in files) / 2**20
        truncated = sum(sum(n > max_length for n in part["num_tokens"][:]) for part in tokens.values())
        print(f"cold:   {cold_s:7.2f} s  {rows / cold_s:10,.0f} rows/s  ({truncated} reviews truncated)")
        where = f"{len(files)} files, {size_mb:.0f} MiB"
        print(f"cached: {cached_s:7.2f} s  {rows / cached_s:10,.0f} rows/s  ({where})")
        print(f"cached is {cold_s / cached_s:.0f}x faster than cold")


if __name__ == "__main__":
    main()
