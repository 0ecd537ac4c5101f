"""The Hugging Face hub: loading that fails fast without a network, pushing a run, the model card.

- :mod:`.access`: every download goes through :func:`ensure_reachable` / :func:`from_pretrained_offline_first`
  (the local cache first; no network is one clear line); :func:`resolve_run` turns a run folder or a hub
  repo id into a local folder, once, at a command's entry point.
- :mod:`.push`: :func:`check_push` (the pre-flight, before training) and :func:`push_run`.
- :mod:`.model_card`: the card (``README.md``) built from a run folder's files.
"""

from ..errors import HubError, OfflineError
from .access import (
    ensure_reachable,
    from_pretrained_offline_first,
    hub_endpoint,
    is_local,
    looks_like_hub_id,
    offline_mode,
    offline_reason,
    resolve_run,
)
from .model_card import build_model_card
from .push import check_push, push_run

__all__ = [
    "HubError",
    "OfflineError",
    "build_model_card",
    "check_push",
    "ensure_reachable",
    "from_pretrained_offline_first",
    "hub_endpoint",
    "is_local",
    "looks_like_hub_id",
    "offline_mode",
    "offline_reason",
    "push_run",
    "resolve_run",
]
