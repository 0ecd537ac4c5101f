"""What every command shares: argument parsing that fails in one line, logging, and the user-error exit.

- :func:`parse_args` reads argument dataclasses from the command line, after an optional leading YAML file
  of defaults; every value is checked against its field's type and choices before anything loads.
- :func:`run_main` runs a command's ``main(argv)``: a user error (bad data, a bad flag, no network, a
  missing or existing folder, a full disk) is one line on stderr and exit status 1, never a traceback;
  ``--debug`` on the command line (or ``HF_SPAM_DEBUG=1``) shows the traceback instead. Any other
  exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args, get_origin, get_type_hints

import yaml
from transformers import HfArgumentParser

from .errors import UserError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "HF_SPAM_DEBUG"
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    ValueError,  # argument parsing and validation
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
_UNIONS = (typing.Union, types.UnionType)


class _OneLineErrors:
    """An ``argparse`` parser whose errors raise ``ValueError`` (one line, no usage text, no exit)."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        raise ValueError(f"{message} (see --help)")


class ArgumentParser(_OneLineErrors, argparse.ArgumentParser):
    """``argparse.ArgumentParser`` without prefix abbreviations, whose errors raise ``ValueError``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


class DataclassArgumentParser(_OneLineErrors, HfArgumentParser):
    """``HfArgumentParser`` (flags from dataclass fields) whose errors raise ``ValueError``."""


def parse_args(dataclass_types: tuple[type, ...], argv: list[str] | None = None) -> tuple[Any, ...]:
    """Parse ``dataclass_types`` from the command line; a leading ``*.yaml`` file gives the defaults.

    ``recipe.py config.yaml --learning_rate 1e-4`` reads the YAML file, then applies the flags after it.
    Unknown keys in the YAML file are an error naming them; so is a flag abbreviated (``--learning_rat``).
    Every value, from the YAML file or the command line, is checked against its field's type and choices
    (a :class:`ValueError` naming the flag), before anything is loaded.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = DataclassArgumentParser(dataclass_types, allow_abbrev=False)
    path = None
    if argv and argv[0].endswith((".yaml", ".yml")):
        path = Path(argv.pop(0))
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of argument names to values")
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown argument(s) {unknown}")
        parser.set_defaults(**values)
    *parsed, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        raise ValueError(f"unrecognized arguments: {' '.join(unknown)} (no abbreviations; see --help)")
    for group in parsed:
        try:
            check_field_values(group)
        except ValueError as error:
            raise ValueError(f"{path}: {error}" if path else str(error)) from None
    return tuple(parsed)


def check_field_values(group: Any) -> None:
    """Each field of the dataclass ``group`` holds a value of its type and, for ``Literal``, one of its
    choices (argparse leaves YAML values, which it takes as defaults, unchecked)."""
    hints = get_type_hints(type(group))
    for item in fields(group):
        value, hint = getattr(group, item.name), hints[item.name]
        union = get_origin(hint) in _UNIONS
        options = [a for a in get_args(hint) if a is not type(None)] if union else [hint]
        if value is None and len(options) < len(get_args(hint)):
            continue  # Optional
        if len(options) != 1:
            continue
        kind = options[0]
        if get_origin(kind) is Literal:
            if value not in get_args(kind):
                raise ValueError(f"--{item.name} {value!r}: choose one of {list(get_args(kind))}")
        elif kind in (int, float, bool, str) and not _is_instance(value, kind):
            raise ValueError(f"--{item.name} {value!r}: expected {kind.__name__}")


def _is_instance(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def configure_logging(level: int = logging.INFO) -> None:
    """Logging for a command: INFO on the main process, warnings on the others; accelerate quieter."""
    main = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(
        level=level if main else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("accelerate").setLevel(logging.WARNING)


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
        if getattr(error, "every_process", False) and int(os.environ.get("RANK", "0")) != 0:
            return 1  # raised alike on every process of a launch: the main process says it once
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        sys.stderr.write(f"error: {message or type(error).__name__} ({DEBUG_FLAG} shows the traceback)\n")
        return 1
    return 0


def command_line(main: Callable[[list[str]], Any], log: bool = True) -> int:
    """What a command runs from the shell: logging (:func:`configure_logging`) unless ``log`` is False,
    then :func:`run_main`; returns the exit status."""
    if log:
        configure_logging()
    return run_main(main)
