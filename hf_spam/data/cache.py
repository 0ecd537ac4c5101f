"""The data cache folder, checksums and the one download we do ourselves (the UCI SMS zip)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from ..hub.access import ensure_reachable

logger = logging.getLogger(__name__)

CACHE_ENV = "HF_SPAM_CACHE"


def get_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$HF_SPAM_CACHE``, else ``~/.cache/hf_spam``."""
    path = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hf_spam"
    path = Path(os.fspath(path)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_member(
    url: str, member: str, sha256: str, what: str, alternatives: str, cache_dir: Path
) -> Path:
    """Download the zip at ``url`` once, extract ``member`` into ``cache_dir`` and check its sha256.

    A cached copy with the right checksum is reused without touching the network. ``http(s)``
    URLs go through :func:`hf_spam.hub.ensure_reachable` first, so with no network this fails in
    seconds; ``file://`` URLs are read directly. A checksum mismatch raises a ``ValueError``
    naming both hashes (the corrupt file is kept aside as ``*.bad`` for inspection).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / member
    if target.is_file() and sha256_file(target) == sha256:
        logger.info("%s: using cached %s", what, target)
        return target
    if urlparse(url).scheme in {"http", "https"}:
        ensure_reachable(what, url=url, alternatives=alternatives)
    logger.info("downloading %s from %s", what, url)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        archive = Path(tmp) / "download.zip"
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        with zipfile.ZipFile(archive) as zipped:
            names = [name for name in zipped.namelist() if Path(name).name == member]
            if not names:
                raise ValueError(f"{url}: the archive holds no '{member}' (it has {zipped.namelist()})")
            with zipped.open(names[0]) as src, open(Path(tmp) / member, "wb") as out:
                shutil.copyfileobj(src, out)
        got = sha256_file(Path(tmp) / member)
        if got != sha256:
            bad = target.with_name(member + ".bad")
            shutil.move(Path(tmp) / member, bad)
            raise ValueError(
                f"{what} from {url}: sha256 mismatch: expected {sha256}, got {got} (file kept at {bad})"
            )
        os.replace(Path(tmp) / member, target)
    return target
