"""Tokenising (cached, truncation counted) and batching: padding strategies, sides, the length sampler."""

from __future__ import annotations

import logging

import pytest
import torch
from accelerate.data_loader import prepare_data_loader

import hf_spam.data.tokenizing as tokenizing
from hf_spam.data import (
    LengthGroupedBatchSampler,
    example_lengths,
    load_sms_spam,
    longest_length,
    make_dataloader,
    split,
    tokenize,
)
from hf_spam.data.tokenizing import tokenize_cache_file

MAX_LENGTH = 64


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf_spam_cache")


@pytest.fixture(scope="module")
def sms_splits(sms_file):
    return split(load_sms_spam(sms_file), "book", seed=123)


@pytest.fixture(scope="module")
def train(sms_splits, gpt2_tokenizer, cache_dir):
    """The book's training split, tokenised (no padding) with max_length=64."""
    return tokenize(sms_splits["train"], gpt2_tokenizer, max_length=MAX_LENGTH, cache_dir=cache_dir)


def test_tokenize_truncates_without_padding_and_counts_what_it_cut(
    sms_splits, gpt2_tokenizer, tmp_path, caplog
):
    with caplog.at_level(logging.INFO, logger="hf_spam.data.tokenizing"):
        tokens = tokenize(sms_splits, gpt2_tokenizer, max_length=MAX_LENGTH, cache_dir=tmp_path)
    assert set(tokens) == {"train", "validation", "test"}
    train = tokens["train"]
    assert train.column_names == ["label", "input_ids", "attention_mask", "num_tokens"]
    assert train["label"][:] == sms_splits["train"]["label"][:]
    lengths = example_lengths(train)
    assert max(lengths) == MAX_LENGTH and min(lengths) < 10  # truncated, not padded
    first_text = sms_splits["train"][0]["text"]
    assert train[0]["input_ids"] == gpt2_tokenizer(first_text)["input_ids"][:MAX_LENGTH]
    assert all(set(row) == {1} for row in train["attention_mask"][:])
    full = train["num_tokens"][:]
    truncated = sum(n > MAX_LENGTH for n in full)
    assert truncated > 0 and all(min(n, MAX_LENGTH) == m for n, m in zip(full, lengths, strict=True))
    assert f"{truncated} truncated to max_length={MAX_LENGTH}" in caplog.text


def test_tokenize_reuses_the_disk_cache(sms_file, gpt2_tokenizer, tmp_path, monkeypatch):
    first = tokenize(load_sms_spam(sms_file).select(range(200)), gpt2_tokenizer, 32, cache_dir=tmp_path)
    again = load_sms_spam(sms_file).select(range(200))  # parsed anew: a different object, the same data
    cache_file, fingerprint = tokenize_cache_file(again, gpt2_tokenizer, 32, cache_dir=tmp_path)
    assert cache_file.is_file() and first.cache_files == [{"filename": str(cache_file)}]
    written = cache_file.stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("tokenised again instead of loading the cache")

    monkeypatch.setattr(tokenizing, "_encode", must_not_run)
    second = tokenize(again, gpt2_tokenizer, 32, cache_dir=tmp_path)
    assert second._fingerprint == first._fingerprint == fingerprint
    assert second["input_ids"][:] == first["input_ids"][:]
    assert cache_file.stat().st_mtime_ns == written
    assert tokenize_cache_file(again, gpt2_tokenizer, 33, cache_dir=tmp_path)[0] != cache_file


def check_padded(batch, tokenizer, originals, length, side):
    """Shapes, dtypes, pad ids and masks of a padded batch against the unpadded examples."""
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (len(originals), length)
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == batch["labels"].dtype == torch.long
    for row, ids, mask in zip(
        originals, batch["input_ids"].tolist(), batch["attention_mask"].tolist(), strict=True
    ):
        n, pads = len(row), length - len(row)
        real = slice(pads, None) if side == "left" else slice(0, n)
        pad = slice(0, pads) if side == "left" else slice(n, None)
        assert ids[real] == row and mask[real] == [1] * n
        assert ids[pad] == [tokenizer.pad_token_id] * pads and mask[pad] == [0] * pads


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("padding", ["longest_in_dataset", "max_length", "dynamic"])
def test_padding_strategies_and_sides(train, gpt2_tokenizer, padding, side):
    loader = make_dataloader(train, gpt2_tokenizer, batch_size=4, padding=padding, padding_side=side)
    batch = next(iter(loader))
    originals = train.select(range(4))["input_ids"][:]
    expected = {
        "longest_in_dataset": longest_length(train),
        "max_length": gpt2_tokenizer.model_max_length,
        "dynamic": max(map(len, originals)),
    }[padding]
    if padding == "longest_in_dataset":
        assert expected == MAX_LENGTH  # some training SMS are longer than 64 tokens and were cut to 64
    check_padded(batch, gpt2_tokenizer, originals, expected, side)
    assert batch["labels"].tolist() == train["label"][:4]
    assert gpt2_tokenizer.padding_side == "right"  # the shared tokenizer is not changed


def test_pad_to_sets_the_length_and_never_cuts(train, gpt2_tokenizer):
    batch = next(iter(make_dataloader(train, gpt2_tokenizer, 3, padding="longest_in_dataset", pad_to=100)))
    assert batch["input_ids"].shape == (3, 100)
    with pytest.raises(ValueError, match="more than the padding length 5"):
        next(iter(make_dataloader(train, gpt2_tokenizer, 3, padding="max_length", pad_to=5)))


def test_no_padding_needs_batch_size_one(train, gpt2_tokenizer):
    batch = next(iter(make_dataloader(train, gpt2_tokenizer, 1, padding="none")))
    assert batch["input_ids"].tolist() == [train[0]["input_ids"]]
    assert batch["attention_mask"].tolist() == [[1] * len(train[0]["input_ids"])]
    with pytest.raises(ValueError, match="batch_size=1"):
        make_dataloader(train, gpt2_tokenizer, 2, padding="none")


def test_shuffle_is_deterministic_for_a_seed(train, gpt2_tokenizer):
    def order(seed):
        loader = make_dataloader(train, gpt2_tokenizer, 16, shuffle=True, seed=seed)
        return [row for batch in loader for row in batch["input_ids"][:, 0].tolist()]

    assert order(1) == order(1) != order(2)


def padding_cost(loader) -> int:
    return sum(int((batch["attention_mask"] == 0).sum()) for batch in loader)


def test_length_grouped_batches(train, gpt2_tokenizer):
    lengths = example_lengths(train)

    def epoch(sampler, number):
        sampler.set_epoch(number)
        return list(sampler)

    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=5)
    batches = epoch(sampler, 0)
    assert sorted(i for batch in batches for i in batch) == list(range(len(train)))  # each index once
    assert len(batches) == len(sampler) and all(len(b) == 8 for b in batches[:-1])
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # longest first
    twin = LengthGroupedBatchSampler(lengths, batch_size=8, seed=5)
    assert epoch(twin, 0) == batches and epoch(twin, 1) == epoch(sampler, 1) != batches
    assert epoch(LengthGroupedBatchSampler(lengths, batch_size=8, seed=6), 0) != batches
    epoch(sampler, 4)  # a full pass moves on to the next epoch by itself
    assert list(sampler) == epoch(twin, 5)

    grouped = make_dataloader(train, gpt2_tokenizer, 8, shuffle=True, group_by_length=True)
    shuffled = make_dataloader(train, gpt2_tokenizer, 8, shuffle=True)
    assert padding_cost(grouped) < padding_cost(shuffled) / 2
    ordered = make_dataloader(train, gpt2_tokenizer, 8, group_by_length=True)  # no shuffle: longest first
    widths = [batch["input_ids"].shape[1] for batch in ordered]
    assert widths == sorted(widths, reverse=True)


def test_length_grouped_loader_under_accelerate_sharding(train, gpt2_tokenizer):
    loader = make_dataloader(train.select(range(100)), gpt2_tokenizer, 8, shuffle=True, group_by_length=True)
    seen = {}
    for process in (0, 1):
        shard = prepare_data_loader(loader, num_processes=2, process_index=process, put_on_device=False)
        for epoch in (0, 1):
            shard.set_epoch(epoch)
            seen[process, epoch] = [i for batch in shard.batch_sampler for i in batch]
        assert all(batch["input_ids"].shape[0] == 8 for batch in shard)
    for epoch in (0, 1):
        both = seen[0, epoch] + seen[1, epoch]
        assert set(both) == set(range(100))  # nothing missed
        assert len(both) == 7 * 8 * 2  # 13 batches of 8 (the last short): accelerate evens them out to 7 each
    assert seen[0, 0] != seen[0, 1]  # set_epoch reaches the sampler through accelerate's wrappers
