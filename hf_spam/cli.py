"""What each recipe's ``if __name__ == "__main__"`` runs: a user error is one line on stderr, no traceback.

User errors are those a user fixes by changing the command or the files: bad data (:class:`DataError`),
bad flags (``ValueError`` from argument parsing and validation), no network (:class:`OfflineError`), a
missing or existing folder, a full disk. ``--debug`` on the command line (or ``HF_SPAM_DEBUG=1``) shows
the whole traceback instead. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from .checkpoints import CheckpointError
from .data import DataError
from .hub import OfflineError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "HF_SPAM_DEBUG"
USER_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    ValueError,
    OfflineError,
    CheckpointError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with no prefix abbreviations whose errors raise ``ValueError``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        raise ValueError(f"{message} (see --help)")


def debug_requested(argv: list[str]) -> bool:
    """``--debug`` among the arguments, or ``HF_SPAM_DEBUG`` set to anything but empty or 0."""
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run_main(main: Callable[[list[str]], Any], argv: list[str] | None = None) -> int:
    """Call ``main(argv)`` (``--debug`` removed); on a user error write ``error: <one line>`` to stderr
    and return 1, else return 0. With ``--debug`` or ``HF_SPAM_DEBUG=1`` the error propagates."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    try:
        main([arg for arg in argv if arg != DEBUG_FLAG])
    except USER_ERRORS as error:
        if debug:
            raise
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        sys.stderr.write(f"error: {message or type(error).__name__} ({DEBUG_FLAG} shows the traceback)\n")
        return 1
    return 0
