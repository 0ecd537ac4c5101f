"""Push an existing run folder to a Hugging Face hub: model or adapter, tokenizer, metrics, curves, card.

Run as ``recipes/push.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.push``.
"""

from __future__ import annotations

import json
import sys

from ..cli import ArgumentParser, command_line
from ..hub import build_model_card, push_run
from ..run_folder import CARD_FILE


def main(argv: list[str] | None = None) -> None:
    """Write the card and push the run folder (or only write the card)."""
    parser = ArgumentParser(description="Push an hf_spam run folder to a Hugging Face hub.")
    parser.add_argument("--run", required=True, help="the run folder, e.g. outputs/<run>")
    parser.add_argument("--hub_model_id", help="name or namespace/name of the repo (created if missing)")
    parser.add_argument("--hub_private", action="store_true", help="create the repo private")
    parser.add_argument("--hub_revision", help="branch to push to (created if missing; default main)")
    parser.add_argument("--base_model", help="hub id of the starting model, when the run used a local folder")
    parser.add_argument("--license", default="apache-2.0", help="license in the card metadata")
    parser.add_argument("--commit_message", help="default: Upload <run> with hf_spam")
    parser.add_argument(
        "--card_only", action="store_true", help="write README.md in the run folder, push nothing"
    )
    args = parser.parse_args(argv)
    if args.card_only:
        card = build_model_card(
            args.run, repo_id=args.hub_model_id, base_model=args.base_model, license=args.license
        )
        card.save(f"{args.run}/{CARD_FILE}")
        print(json.dumps({"card": f"{args.run}/{CARD_FILE}"}))
        return
    if not args.hub_model_id:
        parser.error("--hub_model_id is required (or --card_only)")
    info = push_run(
        args.run,
        args.hub_model_id,
        private=args.hub_private,
        revision=args.hub_revision,
        commit_message=args.commit_message,
        base_model=args.base_model,
        license=args.license,
    )
    print(json.dumps({"repo": info.repo_url.repo_id, "commit": info.oid, "url": info.commit_url}))


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
