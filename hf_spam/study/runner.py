"""Run every row x seed of a study as its own process, in ``outputs/<study>/<row>/seed<k>/``.

A run whose ``metrics.json`` exists is skipped (an interrupted study resumes) -- unless its ``args.json``
says it ran with other flags, which is an error before anything runs. An unfinished run goes on from its
newest complete checkpoint when it was started with the same flags, else starts over; a finished run's
resumable checkpoints are deleted (its model and metrics stay) unless kept. A run that fails is recorded
with the last line of its error and the study goes on. A user error (exit status 1 with an ``error:``
line, e.g. a bad flag or a missing model) is the same for every seed, so the row's other seeds are not
tried. Each run's output goes to ``outputs/<study>/logs/<row>-seed<k>.log``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import StudyError
from ..run_folder import ARGS_FILE, CHECKPOINTS_DIR, is_finished
from ..training.checkpoints import complete_checkpoints
from .spec import Row, Study, group_flags

logger = logging.getLogger(__name__)

Status = Literal["ran", "skipped", "failed", "not_run"]


@dataclass
class RunRecord:
    """What happened to one row x seed."""

    row: str
    seed: int
    run_dir: Path
    status: Status
    error: str | None = None
    log: Path | None = None
    wall_seconds: float = 0.0


def flag_tokens(args: dict[str, Any]) -> list[str]:
    """Recipe arguments as command-line tokens: ``--flag value``; lists as several values, booleans as
    ``true``/``false``, mappings as ``k=v,k=v``; ``None`` (the recipe's default) is left out."""
    tokens: list[str] = []
    for flag, value in args.items():
        if value is None:
            continue
        if isinstance(value, bool):
            values = ["true" if value else "false"]
        elif isinstance(value, (list, tuple)):
            values = [str(v) for v in value]
        elif isinstance(value, dict):
            values = [",".join(f"{k}={v}" for k, v in value.items())]
        else:
            values = [str(value)]
        tokens += [f"--{flag}", *values]
    return tokens


def threads_per_run(jobs: int) -> int:
    """CPU threads for each of ``jobs`` runs at once: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_command(
    row: Row, seed: int, study: Study, study_dir: Path, launcher: str = "python", launch_args: str = "",
    jobs: int = 1,
) -> list[str]:  # fmt: skip
    """The command that runs ``row`` with ``seed`` on the study's split, into ``study_dir/row/seed<k>``:
    the launcher, the recipe (``-m <module>`` or its file), then the recipe's flags."""
    if launcher == "accelerate" and row.recipe.uses_accelerate:
        threads = ["--num_cpu_threads_per_process", str(threads_per_run(jobs))]
        head = ["accelerate", "launch", *(shlex.split(launch_args) if launch_args else threads)]
    else:
        head = [sys.executable]
    own = {"output_dir": str(study_dir / row.name), "run_name": f"seed{seed}", "seed": seed}
    own["split_seed"] = study.split_seed
    return [*head, *row.recipe.target, *flag_tokens(row.args | own)]


def recipe_flags_of(command: list[str], row: Row) -> list[str]:
    """The recipe's flags in a :func:`run_command` command: what follows the recipe's target."""
    target = row.recipe.target
    start = next(i for i in range(len(command)) if command[i : i + len(target)] == target)
    return command[start + len(target) :]


def last_error_line(log: Path) -> str:
    """The line that says what went wrong: the last ``error:`` line, else the last non-empty line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1].removesuffix(" (--debug shows the traceback)")


def run_one(command: list[str], record: RunRecord, env: dict[str, str] | None = None) -> RunRecord:
    """Run ``command`` (its output to ``record.log``, ``env`` its environment); the record says ran or
    failed and why."""
    assert record.log is not None
    record.log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with record.log.open("w") as log:
        log.write(shlex.join(command) + "\n")
        log.flush()
        try:
            code = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, check=False, env=env
            ).returncode
        except OSError as error:  # e.g. accelerate not on PATH
            log.write(f"error: cannot start {command[0]}: {error}\n")
            code = 127
    record.wall_seconds = time.perf_counter() - start
    if code == 0 and is_finished(record.run_dir):
        record.status = "ran"
    else:
        record.status = "failed"
        record.error = last_error_line(record.log) if code else "exited 0 but wrote no metrics.json"
    return record


def _flag_values(tokens: list[str]) -> dict[str, list[str]]:
    values = {flag or "": v for flag, v in group_flags(tokens).items()}  # values before any flag: under ""
    values.pop("overwrite_output_dir", None)  # added to redo an unfinished run
    values.pop("resume_from_checkpoint", None)  # added to go on with one
    values.pop("output_dir", None)  # where the study folder lives: a moved or copied study is the same runs
    return values


def changed_flags(run_dir: Path, flags: list[str]) -> str | None:
    """How the flags a finished run was made with (its ``args.json`` ``command``) differ from ``flags``,
    e.g. ``--max_train_samples: ['32'] -> ['64']``; None when they agree or the run recorded none."""
    try:
        recorded = json.loads((run_dir / ARGS_FILE).read_text())["command"][1:]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    old, new = _flag_values(recorded), _flag_values(flags)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return "; ".join(f"--{k}: {old.get(k)} -> {new.get(k)}" for k in changed[:3]) or None


def _unfinished_run_flags(row: Row, run_dir: Path, command: list[str]) -> list[str]:
    """For the folder of an earlier, unfinished attempt: go on from its newest complete checkpoint when
    the attempt had this command's flags (its ``args.json``), else start over; nothing without a folder."""
    if not run_dir.exists():
        return []
    flags = row.recipe.all_flags
    flags_now = recipe_flags_of(command, row)
    same_flags = (run_dir / ARGS_FILE).is_file() and changed_flags(run_dir, flags_now) is None
    if "resume_from_checkpoint" in flags and same_flags and complete_checkpoints(run_dir / CHECKPOINTS_DIR):
        return ["--resume_from_checkpoint", "latest"]
    return ["--overwrite_output_dir"] if "overwrite_output_dir" in flags else []


def check_finished_runs(study: Study, study_dir: Path) -> None:
    """Finished runs must have been made with the flags this study would pass now: else a resumed study
    would mix results of two settings. Raises :class:`StudyError` naming the first such run."""
    for row in study.rows:
        for seed in study.seeds:
            run_dir = study_dir / row.name / f"seed{seed}"
            if not is_finished(run_dir):
                continue
            changed = changed_flags(run_dir, recipe_flags_of(run_command(row, seed, study, study_dir), row))
            if changed:
                raise StudyError(
                    f"{run_dir} was finished with other arguments ({changed}): use another --output_dir, "
                    "or delete it to run it again"
                )


def run_study(
    study: Study,
    study_dir: Path,
    launcher: str = "python",
    launch_args: str = "",
    dry_run: bool = False,
    jobs: int = 1,
    keep_checkpoints: bool = False,
) -> list[RunRecord]:
    """Run (or skip) every row x seed, ``jobs`` at a time (row by row, seed by seed, when 1); returns one
    record per run, in that order. With several jobs each run gets its share of the CPU threads
    (``OMP_NUM_THREADS``, unless set already): e.g. small runs that each leave most of one GPU idle.
    A finished run's ``checkpoints/`` folder is deleted unless ``keep_checkpoints``."""
    check_finished_runs(study, study_dir)
    records: list[RunRecord] = []
    todo: list[tuple[Row, RunRecord, list[str]]] = []
    for row in study.rows:
        for seed in study.seeds:
            run_dir = study_dir / row.name / f"seed{seed}"
            record = RunRecord(
                row.name, seed, run_dir, "skipped", log=study_dir / "logs" / f"{row.name}-seed{seed}.log"
            )
            records.append(record)
            if is_finished(run_dir):
                logger.info("%s seed %d: skipped (finished: %s)", row.name, seed, run_dir)
                continue
            command = run_command(row, seed, study, study_dir, launcher, launch_args, jobs)
            command += _unfinished_run_flags(row, run_dir, command)
            record.status = "not_run"
            todo.append((row, record, command))
    if dry_run:
        for _row, record, command in todo:
            logger.info("%s seed %d: %s", record.row, record.seed, shlex.join(command))
        return records
    env = None
    if jobs > 1:
        env = {"OMP_NUM_THREADS": str(threads_per_run(jobs))} | dict(os.environ)
    user_errors: dict[str, str] = {}  # row -> its first user error: the same flags fail alike for every seed
    lock = threading.Lock()

    def work(item: tuple[Row, RunRecord, list[str]]) -> None:
        row, record, command = item
        with lock:
            if row.name in user_errors:
                record.error = "not run: an earlier seed failed with a user error"
                return
        logger.info("%s seed %d: %s", row.name, record.seed, shlex.join(command))
        run_one(command, record, env)
        _log_outcome(record)
        checkpoints = record.run_dir / CHECKPOINTS_DIR
        if record.status == "ran" and not keep_checkpoints and checkpoints.is_dir():
            shutil.rmtree(checkpoints)  # only for going on with an unfinished run; the model stays
            logger.info("%s seed %d: deleted %s (finished)", row.name, record.seed, checkpoints)
        if record.status == "failed" and (record.error or "").startswith("error:"):
            with lock:
                user_errors.setdefault(row.name, record.error or "")

    if jobs == 1:
        for item in todo:
            work(item)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(work, todo))
    return records


def _log_outcome(record: RunRecord) -> None:
    if record.status == "ran":
        logger.info("%s seed %d: done in %.1f s", record.row, record.seed, record.wall_seconds)
    else:
        logger.warning("%s seed %d: FAILED (%s); log: %s", record.row, record.seed, record.error, record.log)
