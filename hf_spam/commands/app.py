"""A web app for a trained run: paste a message, pick the threshold, classify a file, read the run's card.

Run as ``recipes/app.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.app``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..cli import ArgumentParser, command_line
from ..serving import DEFAULT_LONG_TEXT, LONG_TEXT_MODES


def main(argv: list[str] | None = None) -> None:
    """Build the run's app and serve it until interrupted."""
    parser = ArgumentParser(description="A gradio app for a saved hf_spam run.")
    parser.add_argument("--run", required=True, help="a run folder, or a hub repo id")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--long_text", choices=LONG_TEXT_MODES, default=DEFAULT_LONG_TEXT)
    args = parser.parse_args(argv)
    run = Path(args.run)
    if not run.is_dir() and (run.is_absolute() or (run.parent.is_dir() and run.parent != Path("."))):
        raise FileNotFoundError(f"--run {args.run}: no such run folder (nor a hub repo id)")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from ..serving.app import build_app
    except ModuleNotFoundError as error:
        if error.name != "gradio":
            raise
        raise ValueError('the app needs gradio: pip install -e ".[app]"') from None
    build_app(args.run, long_text=args.long_text).launch(server_name=args.host, server_port=args.port)


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
