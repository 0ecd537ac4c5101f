"""Hub access with honest failure: no silent retries when there is no network.

Every place that may download (a model hub id, a dataset hub id, a URL) goes through
:func:`ensure_reachable` first. With no network it fails at once with an error that names
the local alternatives, instead of a minute of hub retries.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

HF_ENDPOINT = "https://huggingface.co"
T = TypeVar("T")


class OfflineError(OSError):
    """Raised when a download is needed but the host cannot be reached (or offline mode is on)."""


def is_local(source: str | os.PathLike) -> bool:
    """True when ``source`` names an existing file or folder on this machine."""
    return Path(os.fspath(source)).expanduser().exists()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def looks_like_hub_id(source: str) -> bool:
    """True for ``name`` or ``org/name`` (what the hub accepts); False for things that look like paths."""
    return bool(_HUB_ID.match(source)) and not source.endswith((".json", ".safetensors", ".bin", ".pt"))


def offline_mode() -> bool:
    """True when huggingface_hub's offline mode is on, or datasets' (``HF_DATASETS_OFFLINE``).

    huggingface_hub's switch is ``huggingface_hub.constants.HF_HUB_OFFLINE`` (what ``is_offline_mode()``
    returns), set from ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` when it is imported and settable by
    code. The same variables are read again here, with huggingface_hub's rule for true values, so a
    variable set after the import (a notebook cell, a test) counts too.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(name, "").upper() in constants.ENV_VARS_TRUE_VALUES for name in names)


def _host_reachable(url: str, timeout: float) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_reachable(what: str, url: str | None = None, alternatives: str = "", timeout: float = 3.0) -> None:
    """Fail fast with a clear :class:`OfflineError` when ``url`` (default: the HF hub) cannot be reached.

    Args:
        what: what we were trying to fetch, e.g. ``"model 'gpt2'"``.
        url: the address to reach; defaults to ``$HF_ENDPOINT`` or https://huggingface.co.
        alternatives: a sentence naming what the user can do instead (local path, random weights).
        timeout: seconds for the connection attempt.
    """
    url = url or os.environ.get("HF_ENDPOINT", HF_ENDPOINT)
    if offline_mode():
        reason = "offline mode is on (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE)"
    elif not _host_reachable(url, timeout):
        reason = f"{urlparse(url).hostname} cannot be reached (no network?)"
    else:
        return
    message = f"Cannot download {what}: {reason}."
    if alternatives:
        message += f" {alternatives}"
    raise OfflineError(message)


DEFAULT_ALTERNATIVES = (
    "Pass a local folder instead (for example one built by ../shared/tools/offline_models.py, "
    "or written by save_pretrained), or use random weights (--weights random)."
)


def from_pretrained_offline_first(
    loader: Callable[..., T], source: str, what: str, alternatives: str = DEFAULT_ALTERNATIVES, **kwargs: Any
) -> T:
    """``loader(source, **kwargs)`` (a ``from_pretrained``), trying the local hub cache before the network.

    A local path loads directly. A hub id loads from the cache when it is there; otherwise the hub must be
    reachable, or an :class:`OfflineError` names the alternatives at once.
    """
    if is_local(source):
        return loader(source, **kwargs)
    try:
        return loader(source, local_files_only=True, **kwargs)
    except OSError:
        pass  # not cached
    ensure_reachable(what, alternatives=alternatives)
    return loader(source, **kwargs)
