"""Push an existing run folder to a Hugging Face hub: model or adapter, tokenizer, metrics, curves, card.

    HF_TOKEN=hf_... python recipes/push.py --run outputs/<run> --hub_model_id your-name/gpt2-spam
    python recipes/push.py --run outputs/<run> --hub_model_id your-name/smollm2-spam \
        --base_model HuggingFaceTB/SmolLM2-135M-Instruct --hub_private --hub_revision v1

The token comes from HF_TOKEN or the login cache (`hf auth login`); HF_ENDPOINT points at another hub.
The model card is written to outputs/<run>/README.md first; --card_only writes it and pushes nothing.
Load it back with `python recipes/predict.py --run your-name/gpt2-spam "some text"`.
"""

import sys

from hf_spam.commands.push import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
