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

    huggingface_hub's switch is ``huggingface_hub.constants.HF_HUB_OFFLINE`` (what ``isoffline_mode()``
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


# -- publishing: push a run folder to a hub, load one back by repo id --------------------------------------


class HubError(OSError):
    """A push or a hub load that cannot succeed; the message names the failed check and what to do."""


PUSH_LATER = "or train without --push_to_hub and push the saved run folder afterwards"
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model*.bin",
    "*.py",
)  # fmt: skip  (*.py: the pooling code a first/mean model ships for trust_remote_code)
# lora_base.json: how hf_spam rebuilds the adapter's base (e.g. our GPT-2 from its seed)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "lora_base.json")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model", "chat_template.jinja",
)  # fmt: skip
RUN_FILES = (
    "README.md", "metrics.json", "args.json", "history.json", "curves.png",
    "operating_point.json", "examples.json",  # for Predictor and the app
)  # fmt: skip


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT``, else the endpoint huggingface_hub is configured with."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def run_files(run_dir: str | os.PathLike) -> list[Path]:
    """The files of a run folder a user of the pushed repo needs, in push order.

    The adapter when ``adapter_config.json`` is there (a LoRA run), else the model (config and weights);
    then the tokenizer, ``README.md`` (the model card), ``metrics.json``, ``args.json``, ``history.json``
    and ``curves.png``. Never checkpoints or the best-weights scratch file.
    """
    run_dir = Path(run_dir)
    weights = ADAPTER_FILES if (run_dir / "adapter_config.json").is_file() else MODEL_FILES
    found = [p for pattern in (*weights, *TOKENIZER_FILES, *RUN_FILES) for p in sorted(run_dir.glob(pattern))]
    if not any(p.suffix in (".safetensors", ".bin") for p in found):
        raise HubError(
            f"{run_dir} holds no model to push (no model.safetensors or adapter weights): "
            "pass a run folder trained with --save_model true"
        )
    return list(dict.fromkeys(p for p in found if p.is_file()))


def check_push(
    repo_id: str, *, private: bool = False, revision: str | None = None, token: str | None = None
) -> str:
    """Pre-flight of a push, run before training: token, endpoint, repo (created if missing), branch.

    Returns the full ``namespace/name`` id of the repo. Raises :class:`HubError` with one line that says
    which check failed and what to do. The token comes from ``token``, ``HF_TOKEN`` or the login cache
    and is never logged.
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(
            f"--hub_model_id {repo_id!r} is not a valid repo id (name or namespace/name): {err}"
        ) from None
    if not (token or get_token()):
        raise HubError(
            "No Hugging Face token: set HF_TOKEN or run `hf auth login` with a token that has write access, "
            "then run again"
        )
    endpoint = hub_endpoint()
    if offline_mode():
        raise HubError(
            f"Cannot push to {endpoint}: offline mode is on (HF_HUB_OFFLINE); unset it, {PUSH_LATER}"
        )
    if not _host_reachable(endpoint, timeout=5.0):
        raise HubError(
            f"Cannot push: the hub endpoint {endpoint} cannot be reached (no network, or wrong HF_ENDPOINT); "
            f"check the connection, {PUSH_LATER}"
        )
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(url.repo_id, branch=revision, exist_ok=True)
    except HfHubHTTPError as err:
        raise HubError(_push_http_error(err, repo_id, endpoint)) from None
    logger.info("hub repo ready: %s/%s%s", endpoint, url.repo_id, f" (branch {revision})" if revision else "")
    return url.repo_id


def _push_http_error(err: Any, repo_id: str, endpoint: str) -> str:
    status = err.response.status_code if err.response is not None else None
    if status == 401:
        return (
            f"The hub at {endpoint} rejected the token (401 Unauthorized): set HF_TOKEN to a valid "
            "token with write access, or run `hf auth login`"
        )
    if status == 403:
        return (
            f"The token may not create or write {repo_id!r} on {endpoint} (403 Forbidden): push to a "
            "namespace you own (your user name or an organisation you write to), or use a token with "
            "write access"
        )
    detail = getattr(err, "server_message", None) or str(err).splitlines()[0]
    return f"Cannot create or write {repo_id!r} on {endpoint} (HTTP {status}): {detail}"


def push_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
) -> Any:
    """Push a run folder to the hub in one commit: model or adapter, tokenizer, metrics, curves, model card.

    Writes the model card to ``run_dir/README.md`` first (see :func:`hf_spam.model_card.build_model_card`;
    ``base_model`` names the hub id of the starting model when the run used a local folder). Returns
    huggingface_hub's ``CommitInfo``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from .model_card import build_model_card

    run_dir = Path(run_dir)
    repo_id = check_push(repo_id, private=private, revision=revision, token=token)
    build_model_card(run_dir, repo_id=repo_id, base_model=base_model, license=license).save(
        run_dir / "README.md"
    )
    files = run_files(run_dir)
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in files]
    api = HfApi(endpoint=hub_endpoint(), token=token)
    try:
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload {run_dir.name} with hf_spam",
            revision=revision,
        )
    except HfHubHTTPError as err:
        raise HubError(_push_http_error(err, repo_id, hub_endpoint())) from None
    size = sum(p.stat().st_size for p in files)
    logger.info(
        "pushed %s: %d files (%.1f MB; unchanged ones are not uploaded again): %s",
        repo_id, len(files), size / 2**20, info.commit_url,
    )  # fmt: skip
    return info


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
    if offline_mode() or not _host_reachable(endpoint, timeout=3.0):
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
