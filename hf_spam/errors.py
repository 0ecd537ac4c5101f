"""The mistakes a user fixes by changing the command or the files, one base class for all of them.

A :class:`UserError` reaches the user as one line (:func:`hf_spam.cli.run_main`), never as a traceback.
Each kind also derives from the built-in exception callers already catch (``ValueError`` for bad values,
``OSError`` for files and the network), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command, the files or the environment; the message says what to do."""


class DataError(UserError, ValueError):
    """A bad input row or column; the message names the file and the line, row or column."""

    def __init__(
        self,
        file: str,
        reason: str,
        line: int | None = None,
        unit: str = "line",
        column: str | None = None,
    ) -> None:
        self.file, self.reason, self.line, self.unit, self.column = file, reason, line, unit, column
        where = f"{file}, {unit} {line}" if line is not None else file
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {reason}")


class OfflineError(UserError, OSError):
    """A download is needed but the host cannot be reached (or offline mode is on)."""


class HubError(UserError, OSError):
    """A push or a hub load that cannot succeed; the message names the failed check and what to do."""


class WeightsError(UserError, ValueError):
    """A checkpoint does not fit the model: missing or unexpected keys, or wrong shapes."""


class CheckpointError(UserError, OSError):
    """A checkpoint could not be written (e.g. the disk is full); the earlier ones are intact."""


class CheckpointMismatchError(UserError, ValueError):
    """The checkpoint to resume from was written by a run with other data, model or arguments."""


class StudyError(UserError, ValueError):
    """A study file or override that is wrong: one line naming the file and the field."""


class LaunchError(UserError, ValueError):
    """The launch asks for what this machine cannot run (FSDP or DeepSpeed with no GPU, a run folder the
    machines do not share). Every process raises it alike; only the main process reports it."""

    every_process = True
