"""A web app for a trained run: paste a message, pick the threshold, classify a file, read the run's card.

Run as ``recipes/app.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.app``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..cli import DataclassArgumentParser, command_line
from ..serving import ServingArguments


def main(argv: list[str] | None = None) -> None:
    """Build the run's app and serve it until interrupted."""
    parser = DataclassArgumentParser((ServingArguments,), description="A gradio app for a saved hf_spam run.",
                                     allow_abbrev=False)  # fmt: skip
    parser.add_argument("--run", required=True, help="a run folder, or a hub repo id")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    serving, args = parser.parse_args_into_dataclasses(args=argv)
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
    build_app(args.run, serving=serving).launch(server_name=args.host, server_port=args.port)


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
