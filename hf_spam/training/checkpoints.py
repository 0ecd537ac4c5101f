"""Resumable checkpoints that are complete or absent, and that belong to the run resuming them.

A checkpoint is ``run/checkpoints/step_NNNNNNN/``: accelerate's state (model, optimizer, scheduler, RNG,
samplers; written by :meth:`accelerate.Accelerator.save_state`) plus :data:`STATE_FILE`, our loop state and
the run's identity as JSON. It is written to ``.tmp-step_NNNNNNN`` and renamed when every file is there, so
a kill or a full disk mid-write never leaves a ``step_*`` folder behind; :data:`STATE_FILE` is written last
and :func:`complete_checkpoints` ignores any ``step_*`` folder without it.

accelerate's files are pickles (optimizer, scheduler, RNG state): loading a checkpoint runs code from it,
so a checkpoint folder must be trusted like code. Ours is JSON.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ..errors import CheckpointError, CheckpointMismatchError
from ..run_folder import CHECKPOINTS_DIR

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
TMP_PREFIX = ".tmp-"
_DISK_FULL_MARKERS = ("No space left on device", "StorageFull", "file write failed")


def complete_checkpoints(folder: Path) -> list[Path]:
    """The complete ``step_*`` checkpoints in ``folder``, oldest first (folders without :data:`STATE_FILE`
    were interrupted and are skipped)."""
    found = sorted(p for p in Path(folder).glob("step_*") if p.is_dir())
    complete = [p for p in found if (p / STATE_FILE).is_file()]
    for path in sorted(set(found) - set(complete)):
        logger.warning("%s is incomplete (no %s): skipped", path, STATE_FILE)
    return complete


def find_checkpoint(checkpoint: str, run_dir: Path) -> Path:
    """The folder ``checkpoint`` names: ``latest`` (the newest complete one in ``run_dir``) or a path."""
    if checkpoint == "latest":
        found = complete_checkpoints(run_dir / CHECKPOINTS_DIR)
        if not found:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no complete checkpoint in {run_dir}")
        return found[-1]
    path = Path(checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint: no such checkpoint folder {path}")
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint: {path} is not a complete checkpoint (no {STATE_FILE}); "
            "it was interrupted or written by an older hf_spam"
        )
    return path


def _remove(path: Path) -> None:
    """Delete a folder so that a kill half-way never leaves a ``step_*`` folder with missing files."""
    doomed = path.with_name(f"{TMP_PREFIX}old-{path.name}")
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)
    shutil.rmtree(doomed)


def _disk_full(error: BaseException, folder: Path) -> bool:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if any(marker in str(error) for marker in _DISK_FULL_MARKERS):
        return True
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def save_checkpoint(
    accelerator: Accelerator,
    folder: Path,
    name: str,
    payload: dict[str, Any],
    keep: int,
    extra_files: tuple[Path, ...] = (),
) -> Path:
    """Write accelerate's state, ``extra_files`` and ``payload`` (JSON) as ``folder/name``, atomically; keep
    the newest ``keep`` complete checkpoints. A failed write removes its partial folder and leaves the others
    as they were; a full disk is a :class:`CheckpointError` saying so."""
    final, tmp = folder / name, folder / f"{TMP_PREFIX}{name}"
    main = accelerator.is_main_process
    if main:
        for stale in folder.glob(f"{TMP_PREFIX}*"):  # left by a kill during an earlier write
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if main:
            for extra in extra_files:
                link_or_copy(extra, tmp / extra.name)
            (tmp / STATE_FILE).write_text(json.dumps(payload, indent=1) + "\n")
    except Exception as error:
        full = _disk_full(error, folder)
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        earlier = ", ".join(p.name for p in complete_checkpoints(folder)) or "none"
        if full:
            raise CheckpointError(
                f"no space left on the device writing checkpoint {final}: nothing of it was kept and the "
                f"earlier checkpoints ({earlier}) are intact; free some space or lower --save_total_limit, "
                "then continue with --resume_from_checkpoint latest"
            ) from error
        raise
    if main:
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
        for old in complete_checkpoints(folder)[:-keep]:
            _remove(old)
    accelerator.wait_for_everyone()
    return final


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows it (files here are replaced, never rewritten in place), else
    a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The JSON payload that :func:`save_checkpoint` wrote into ``path``."""
    return json.loads((path / STATE_FILE).read_text())


def check_identity(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raise :class:`CheckpointMismatchError` listing every difference between the checkpoint's identity
    and this run's."""
    current = json.loads(json.dumps(current))  # compare as JSON (tuples are lists there)
    differences = [
        f"{key}: {saved.get(key, '(absent)')!r} in the checkpoint, {current.get(key, '(absent)')!r} now"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, "(absent)") != current.get(key, "(absent)")
    ]
    if differences:
        raise CheckpointMismatchError(
            f"checkpoint {path} belongs to another run ({'; '.join(differences)}); resume with the "
            "arguments it was written with, or start a new run (another --run_name)"
        )
