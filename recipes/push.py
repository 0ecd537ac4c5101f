"""Push an existing run folder to a Hugging Face hub: model or adapter, tokenizer, metrics, curves, card.

    HF_TOKEN=hf_... python recipes/push.py --run outputs/<run> --hub_model_id your-name/gpt2-spam
    python recipes/push.py --run outputs/<run> --hub_model_id your-name/smollm2-spam \
        --base_model HuggingFaceTB/SmolLM2-135M-Instruct --hub_private --hub_revision v1

The token comes from HF_TOKEN or the login cache (`hf auth login`); HF_ENDPOINT points at another hub.
The model card is written to outputs/<run>/README.md first; --card_only writes it and pushes nothing.
Load it back with `python recipes/predict.py --run your-name/gpt2-spam "some text"`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from hf_spam.hub import HubError, push_run
from hf_spam.model_card import build_model_card


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Push an hf_spam run folder to a Hugging Face hub.")
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
        card.save(f"{args.run}/README.md")
        print(json.dumps({"card": f"{args.run}/README.md"}))
        return
    if not args.hub_model_id:
        parser.error("--hub_model_id is required (or --card_only)")
    try:
        info = push_run(
            args.run,
            args.hub_model_id,
            private=args.hub_private,
            revision=args.hub_revision,
            commit_message=args.commit_message,
            base_model=args.base_model,
            license=args.license,
        )
    except (HubError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(json.dumps({"repo": info.repo_url.repo_id, "commit": info.oid, "url": info.commit_url}))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
