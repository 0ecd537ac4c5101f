"""Frozen features + logistic regression, and the TF-IDF / bag-of-words floor with no neural network.

    python recipes/frozen_features.py --method tfidf \
        --data_source ../shared/data/sms_spam/SMSSpamCollection
    python recipes/frozen_features.py --implementation transformers --model ../models/all-MiniLM-L6-v2 \
        --data_source ../shared/data/sms_spam/SMSSpamCollection            # [CLS] by default (encoder)
    python recipes/frozen_features.py --model gpt2 --weights random \
        --tokenizer ../shared/models/gpt2-tokenizer --pooling mean --data_source ...

Embeddings are extracted once per backbone and data (cached in $HF_SPAM_CACHE/features/), then
LogisticRegression's C is chosen on the validation split. A YAML file as first argument gives the defaults.
Writes outputs/<run>/metrics.json (the layout of the fine-tuning recipes) and args.json.
"""

from __future__ import annotations

import json
import sys

from hf_spam.args import DataArguments, parse_args
from hf_spam.baselines import run_frozen_features
from hf_spam.cli import run_main
from hf_spam.features import FeatureArguments
from hf_spam.run import configure_logging

# what main parses; hf_spam.study reads the flags a row may take from it
ARGUMENT_GROUPS = (FeatureArguments, DataArguments)


def main(argv: list[str] | None = None) -> dict:
    feature_args, data_args = parse_args(ARGUMENT_GROUPS, argv)
    metrics = run_frozen_features(feature_args, data_args)
    details = metrics["training"]["details"]
    summary = {
        "run": metrics["run"],
        "accuracy": {split: round(m["accuracy"], 4) for split, m in metrics["splits"].items()},
        "best_C": details["best_C"],
        "analyzer": details.get("analyzer"),
        "feature_dim": details["feature_dim"],
        "cache_hit": details.get("cache_hit"),
        "seconds": round(metrics["seconds"]["training"], 1),
    }
    print(json.dumps(summary))
    return metrics


if __name__ == "__main__":
    configure_logging()
    sys.exit(run_main(main))
