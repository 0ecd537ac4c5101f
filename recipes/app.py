"""A web app for a trained run: paste a message, pick the threshold, classify a file, read the run's card.

    pip install -e ".[app]"
    python recipes/app.py --run outputs/<run>          # then open http://127.0.0.1:7860

--run: a run folder (or a hub repo id). The app listens on 127.0.0.1 only (--host to change it).
The threshold slider starts at the run's operating point (chosen on validation); --long_text says how
texts longer than the model's context are read (default chunks: the mean over windows).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from hf_spam.cli import ArgumentParser, run_main
from hf_spam.predict import DEFAULT_LONG_TEXT, LONG_TEXT_MODES


def main(argv: list[str] | None = None) -> None:
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
        from hf_spam.app import build_app
    except ModuleNotFoundError as error:
        if error.name != "gradio":
            raise
        raise ValueError('the app needs gradio: pip install -e ".[app]"') from None
    build_app(args.run, long_text=args.long_text).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run_main(main))
