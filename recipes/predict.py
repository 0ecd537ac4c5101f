"""Classify texts with a saved run: label and probability per text.

    python recipes/predict.py --run outputs/<run> "Free entry in a weekly competition!" "see you at 6"
    python recipes/predict.py --run outputs/<run> --file texts.txt      # one text per line
    echo "WINNER!! claim your prize" | python recipes/predict.py --run outputs/<run>
    python recipes/predict.py --run your-name/gpt2-spam "see you at 6"     # a repo pushed to the hub
    python recipes/predict.py --run outputs/<run> --quantize int8 --file texts.txt          # int8 on CPU
    python recipes/predict.py --run outputs/<run> --quantize int8 --measure_accuracy        # its test cost
    python recipes/predict.py --run outputs/<run> --backend onnxruntime "text"  # after export_onnx.py
    python recipes/predict.py --run outputs/<pair run> --pairs "$(printf 'first text\tsecond text')"

Prints one JSON object per text: {"text", "label", "probability", "probabilities", "threshold",
"temperature", "long_text", "tokens", "chunks", "truncated"}. The run's operating point (threshold and
temperature chosen on validation, operating_point.json) is applied; --threshold overrides it
(--threshold 0.5 --temperature 1 gives transformers.pipeline's argmax). A text longer than the model's
context: --long_text chunks (default: the mean of the windows' probabilities), head_tail or truncate.
Texts are tokenised in batches and their windows sorted by length into batches of at most
--max_batch_tokens padded tokens (results in input order); a LoRA run is merged in memory (the folder is
untouched). --measure_accuracy classifies the run's own test split (from args.json) with float32 and with
the chosen variant and writes the change to <run>/serving_accuracy.json. A long --file shows a progress bar.
A run trained on sentence pairs (--text_pair_column) takes --pairs: each text is the two texts separated
by a tab. A nearest-neighbour run (frozen_features.py --method knn) predicts as any other run.
An error (no such run folder, a bad flag) is one line on stderr; --debug (or HF_SPAM_DEBUG=1) shows the
traceback.
"""

import sys

from hf_spam.commands.predict import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
