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

from ..errors import HubError, OfflineError

logger = logging.getLogger(__name__)

HF_ENDPOINT = "https://huggingface.co"
T = TypeVar("T")


def is_local(source: str | os.PathLike) -> bool:
    """True when ``source`` names an existing file or folder on this machine."""
    return Path(os.fspath(source)).expanduser().exists()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def looks_like_hub_id(source: str) -> bool:
    """True for ``name`` or ``org/name`` (what the hub accepts); False for things that look like paths."""
    return bool(_HUB_ID.match(source)) and not source.endswith((".json", ".safetensors", ".bin", ".pt"))


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def offline_reason() -> str | None:
    """Why offline mode is on (``"HF_HUB_OFFLINE=1 is set"``), or None when it is off.

    huggingface_hub's switch is ``huggingface_hub.constants.HF_HUB_OFFLINE``, set from ``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE`` when it is imported and settable by code; datasets reads
    ``HF_DATASETS_OFFLINE``. The variables are read again here, with huggingface_hub's rule for true
    values, so one set after the import (a notebook cell, a test) counts too, and the one that is set is
    named.
    """
    from huggingface_hub import constants

    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name, "")
        if value.upper() in constants.ENV_VARS_TRUE_VALUES:
            return f"{name}={value} is set"
    if constants.HF_HUB_OFFLINE:
        return "huggingface_hub's offline mode is on (huggingface_hub.constants.HF_HUB_OFFLINE)"
    return None


def offline_mode() -> bool:
    """True when offline mode is on (see :func:`offline_reason`)."""
    return offline_reason() is not None


def host_reachable(url: str, timeout: float) -> bool:
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
    offline = offline_reason()
    if offline:
        reason = f"offline mode is on ({offline})"
    elif not host_reachable(url, timeout):
        reason = f"{urlparse(url).hostname} cannot be reached (no network?)"
    else:
        return
    message = f"Cannot download {what}: {reason}."
    if alternatives:
        message += f" {alternatives}"
    raise OfflineError(message)


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT``, else the endpoint huggingface_hub is configured with."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


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


def resolve_run(source: str | os.PathLike, revision: str | None = None, token: str | None = None) -> Path:
    """A run folder on this machine: ``source`` itself, or a hub repo id downloaded to the hub cache.

    Downloads go through ``huggingface_hub.snapshot_download`` (the normal hub cache, reused when nothing
    changed). With no network, a repo already in the cache is used; otherwise :class:`OfflineError`.
    """
    if is_local(source):
        return Path(source)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    source, endpoint = os.fspath(source), hub_endpoint()
    if not looks_like_hub_id(source):
        raise FileNotFoundError(f"{source}: no such folder, and not a hub repo id (namespace/name)")
    if offline_mode() or not host_reachable(endpoint, timeout=3.0):
        try:
            return Path(snapshot_download(source, revision=revision, local_files_only=True))
        except LocalEntryNotFoundError:
            raise OfflineError(
                f"{source}: no such folder here, and {endpoint} cannot be reached (or offline mode is on) "
                "to download it; pass a local run folder"
            ) from None
    try:
        return Path(snapshot_download(source, revision=revision, endpoint=endpoint, token=token))
    except HfHubHTTPError as err:
        raise HubError(
            f"{source}: no such folder here, and not downloadable from {endpoint} "
            f"({type(err).__name__}; a private repo needs HF_TOKEN)"
        ) from None
