"""A web app for a trained run: paste a message, pick the threshold, classify a file, read the run's card.

    pip install -e ".[app]"
    python recipes/app.py --run outputs/<run>          # then open http://127.0.0.1:7860

--run: a run folder (or a hub repo id). The app listens on 127.0.0.1 only (--host to change it).
The threshold slider starts at the run's operating point (chosen on validation); --long_text says how
texts longer than the model's context are read (default chunks: the mean over windows).
"""

import sys

from hf_spam.commands.app import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
