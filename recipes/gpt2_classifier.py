"""Fine-tune GPT-2 as a text classifier (the book's chapter 6), on our GPT-2 or any transformers decoder.

    accelerate launch recipes/gpt2_classifier.py \
        --data_source ../shared/data/sms_spam/SMSSpamCollection \
        --tokenizer ../shared/models/gpt2-tokenizer --weights random --trainable all

Every switch of the book's bonus study is a flag: --trainable, --pooling, --causal, --model (size),
--weights, --padding, --trainable lora (peft adapters: --lora_r, --lora_alpha, --lora_targets, --merge);
--implementation transformers runs AutoModelForSequenceClassification instead
(e.g. --model SmolLM2-135M-Instruct folder). A YAML file as first argument gives the defaults.
Writes outputs/<run>/: metrics.json, args.json, history.json, curves.png and the saved model.
"""

import sys

from hf_spam.commands.gpt2_classifier import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
