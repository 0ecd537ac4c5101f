"""Publishing: push a run folder to a Hugging Face hub in one commit, after a pre-flight that fails fast.

:func:`check_push` runs before training (token, endpoint, repo, branch), so a run that cannot be pushed
fails in seconds, not after an hour; :func:`push_run` writes the model card and commits the run folder's
files (:func:`hf_spam.run_folder.files_to_push`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import HubError
from ..run_folder import ADAPTER_CONFIG, CARD_FILE, files_to_push
from .access import host_reachable, hub_endpoint, is_local, offline_reason
from .model_card import build_model_card

logger = logging.getLogger(__name__)

PUSH_LATER = "or train without --push_to_hub and push the saved run folder afterwards"


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
    offline = offline_reason()
    if offline:
        raise HubError(f"Cannot push to {endpoint}: offline mode is on ({offline}); unset it, {PUSH_LATER}")
    if not host_reachable(endpoint, timeout=5.0):
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


def _pushed_bytes(path: Path, base_model: str | None) -> str | bytes:
    """What is uploaded for ``path``: the file itself, except an adapter config when the run names its hub
    base (``--base_model``): the pushed copy's ``base_model_name_or_path`` is that hub id, so
    ``AutoPeftModelForSequenceClassification.from_pretrained(repo_id)`` loads anywhere (the run folder
    keeps its local path)."""
    if path.name != ADAPTER_CONFIG:
        return str(path)
    config = json.loads(path.read_text())
    local = config.get("base_model_name_or_path")
    if base_model:
        config["base_model_name_or_path"] = base_model
        return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    if local and is_local(local):
        logger.warning(
            "%s names a local base model (%s): peft on another machine cannot load the pushed adapter by "
            "itself; push with --base_model <hub id of that model>", path, local,
        )  # fmt: skip
    return str(path)


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

    Writes the model card to ``run_dir/README.md`` first (see :func:`hf_spam.hub.model_card.build_model_card`;
    ``base_model`` names the hub id of the starting model when the run used a local folder). Returns
    huggingface_hub's ``CommitInfo``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    run_dir = Path(run_dir)
    repo_id = check_push(repo_id, private=private, revision=revision, token=token)
    build_model_card(run_dir, repo_id=repo_id, base_model=base_model, license=license).save(
        run_dir / CARD_FILE
    )
    files = files_to_push(run_dir)
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=_pushed_bytes(p, base_model))
                  for p in files]  # fmt: skip
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
