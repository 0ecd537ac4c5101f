"""Frozen features + logistic regression, and the TF-IDF / bag-of-words floor with no neural network.

    python recipes/frozen_features.py --method tfidf \
        --data_source ../shared/data/sms_spam/SMSSpamCollection
    python recipes/frozen_features.py --implementation transformers --model ../models/all-MiniLM-L6-v2 \
        --data_source ../shared/data/sms_spam/SMSSpamCollection            # [CLS] by default (encoder)
    python recipes/frozen_features.py --model gpt2 --weights random \
        --tokenizer ../shared/models/gpt2-tokenizer --pooling mean --data_source ...
    python recipes/frozen_features.py --method knn --implementation transformers \
        --model ../models/all-MiniLM-L6-v2 --pooling mean --data_source ...     # nearest neighbours

Embeddings are extracted once per backbone and data (cached in $HF_SPAM_CACHE/features/), then
LogisticRegression's C is chosen on the validation split (--method knn: the number of neighbours k of a
cosine vote; its index is saved, and predict.py and the app use the run). A YAML file as first argument
gives the defaults. Writes outputs/<run>/metrics.json (the layout of the fine-tuning recipes), args.json,
test_predictions.csv and operating_point.json.
"""

import sys

from hf_spam.commands.frozen_features import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
