"""The on-disk store of the frozen-prefix cache: each example's hidden states at the frozen boundary.

One folder per frozen-part fingerprint under ``$HF_SPAM_CACHE/frozen_prefix/``, one safetensors shard per
build (written under a temporary name, then renamed); inside, each example is keyed by a hash of its token
ids (:func:`example_key`), so runs, seeds and epochs that share the frozen part share the store, and new
examples are added as a new shard, never rebuilt. Shards are memory-mapped, never copied whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..data.cache import get_cache_dir

STORE_DIR = "frozen_prefix"


def example_key(input_ids: Sequence[int] | torch.Tensor) -> str:
    """The key of one example in a store: a hash of its token ids."""
    ids = np.asarray(input_ids.tolist() if isinstance(input_ids, torch.Tensor) else input_ids, np.int64)
    return hashlib.blake2b(ids.tobytes(), digest_size=16).hexdigest()


@dataclass
class PrefixStore:
    """Cached boundary hidden states, one folder per frozen-part fingerprint, one shard per build."""

    root: Path
    index: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # key -> (shard, start, length)
    shards: list[torch.Tensor] = field(default_factory=list)
    reused: int = 0  # examples of the last :meth:`ensure` found in the store
    computed: int = 0  # examples of the last :meth:`ensure` computed and added

    @classmethod
    def open(cls, fingerprint: str, cache_dir: str | os.PathLike | None = None) -> PrefixStore:
        """The store of ``fingerprint`` under the cache folder (``$HF_SPAM_CACHE``), with its shards read."""
        store = cls(get_cache_dir(cache_dir) / STORE_DIR / fingerprint[:24])
        store.reload()
        return store

    def reload(self) -> None:
        """Map every complete shard (a shard is renamed into place only once fully written)."""
        self.index, self.shards = {}, []
        for path in sorted(self.root.glob("shard-*.safetensors")):
            with safe_open(path, "pt") as f:
                keys = json.loads(f.metadata()["keys"])
                lengths = json.loads(f.metadata()["lengths"])
            hidden = _map_tensor(path, "hidden")
            number, start = len(self.shards), 0
            self.shards.append(hidden)
            for key, length in zip(keys, lengths, strict=True):
                self.index.setdefault(key, (number, start, length))
                start += length

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def get(self, key: str) -> torch.Tensor:
        """The hidden states ``(length, D)`` of the example with this key."""
        number, start, length = self.index[key]
        return self.shards[number][start : start + length]

    def write_shard(self, keys: list[str], hidden: list[torch.Tensor]) -> Path:
        """Add examples as one new shard file (written under a temporary name, then renamed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"shard-{uuid.uuid4().hex}.safetensors"
        tmp = path.with_name(f".tmp-{path.name}")
        metadata = {"keys": json.dumps(keys), "lengths": json.dumps([len(h) for h in hidden])}
        save_file({"hidden": torch.cat(hidden).contiguous()}, tmp, metadata=metadata)
        os.replace(tmp, path)
        return path


_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}


def _map_tensor(path: Path, name: str) -> torch.Tensor:
    """A tensor of a safetensors file, memory-mapped (pages are read when used, never copied whole)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        info = json.loads(f.read(size))[name]
    start, end = info["data_offsets"]
    raw = np.memmap(path, dtype=np.uint8, mode="c", offset=8 + size + start, shape=(end - start,))
    return torch.from_numpy(raw).view(_DTYPES[info["dtype"]]).view(info["shape"])
