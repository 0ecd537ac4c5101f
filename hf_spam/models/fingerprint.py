"""Fingerprints of tensors: what makes two sets of weights the same, byte for byte."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def update_with_tensors(digest: Any, named: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Feed ``digest`` (a ``hashlib`` hash) the name, dtype, shape and bytes of each tensor, in name order."""
    for name, tensor in sorted(named, key=lambda item: item[0]):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
