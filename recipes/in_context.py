"""In-context learning: prompt a frozen decoder with labelled examples and score each label word.

    python recipes/in_context.py --model ../models/SmolLM2-135M-Instruct \
        --data_source ../shared/data/sms_spam/SMSSpamCollection --k 8          # 8 random demonstrations
    python recipes/in_context.py --model ../models/SmolLM2-135M-Instruct --k 0 --data_source ...  # zero-shot
    python recipes/in_context.py --model ../models/SmolLM2-135M-Instruct --demos knn --k 8 \
        --embedding_model ../models/all-MiniLM-L6-v2 --data_source ...          # each query's neighbours
    python recipes/in_context.py --implementation hf_spam --model gpt2 --weights random \
        --tokenizer ../shared/models/gpt2-tokenizer --data_source ...           # our GPT-2, plain template

The prompt uses the tokenizer's chat template when it has one (else a plain one; --template FILE overrides
it); --label_words ham=ham spam=spam sets the answers scored. Contextual calibration (--calibrate auto) is
kept when it helps on validation; the threshold is chosen on validation. Writes outputs/<run>/ as every
recipe does (metrics.json, test_predictions.csv, operating_point.json, args.json) plus in_context.json, so
recipes/predict.py, the app and compare.py use the run as any other. A YAML file as first argument gives
the defaults.
"""

import sys

from hf_spam.commands.in_context import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
