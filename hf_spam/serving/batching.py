"""Batches for prediction: sequences sorted by length, each batch filled up to a budget of padded tokens."""

from __future__ import annotations

from collections.abc import Sequence


def token_budget_batches(
    lengths: Sequence[int], max_batch_tokens: int, max_rows: int | None = None
) -> list[list[int]]:
    """Indices into ``lengths``, grouped into batches of similar length, longest first.

    A batch holds as many sequences as fit in ``max_batch_tokens`` padded tokens (rows x its longest
    sequence) and at most ``max_rows`` rows; a sequence longer than the budget is a batch of its own. Every
    index appears once. Sorting puts a 20-token message beside other short ones, never beside a 170-token
    one, so little of each batch is padding; the longest batch runs first, so a memory limit shows at once.
    """
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens {max_batch_tokens}: must be >= 1")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"batch_size {max_rows}: must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: equal lengths keep input order
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        # descending order: the batch's first sequence is its longest
        if (
            batch
            and (len(batch) + 1) * max(lengths[batch[0]], 1) <= max_batch_tokens
            and (max_rows is None or len(batch) < max_rows)
        ):
            batch.append(i)
        else:
            batches.append([i])
    return batches
