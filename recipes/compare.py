"""Run a study -- named rows of recipe arguments x seeds, all on one split -- and write its report.

    python recipes/compare.py recipes/studies/seven_questions.yaml \
        --data_source ../shared/data/sms_spam/SMSSpamCollection \
        --set gpt2:weights=random --set gpt2:tokenizer=../shared/models/gpt2-tokenizer \
        --seeds 1 2 3 [--rows last_token first_token] [-- --eval_every 0]
    python recipes/compare.py recipes/studies/label_budget.yaml --train_sizes 8 16 32 64 256 all ...

Each row x seed runs as its own process into outputs/<study>/<row>/seed<k>/ (a finished run is skipped: an
interrupted study resumes; a failed run is reported, the others go on), then outputs/<study>/report.md,
report.json, report.csv, accuracy_vs_time.png and validation_curves.png are written. Overrides (--model,
--weights, ..., --set flag=value, flags after --) go to every row whose recipe takes the flag;
--set RECIPE_OR_ROW:flag=value to some rows only. --train_sizes (or train_sizes: in the study file) runs
every row at each number of labelled training examples and adds learning curves (a table and
learning_curves.png) to the report. The study file's format: hf_spam/study/spec.py.
"""

import sys

from hf_spam.commands.compare import cli, main

__all__ = ["main"]  # tests and notebooks call main(argv); the shell runs cli()

if __name__ == "__main__":
    sys.exit(cli())
