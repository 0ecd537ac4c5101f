"""Run a study -- named rows of recipe arguments x seeds, all on one split -- and write its report.

Run as ``recipes/compare.py`` (its docstring shows the usage)
or ``python -m hf_spam.commands.compare``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from ..cli import ArgumentParser, command_line
from ..run_folder import is_finished
from ..study import apply_overrides, load_study, run_study, select, write_report
from ..study.curves import expand_train_sizes
from ..study.runner import RunRecord
from ..study.spec import parse_train_sizes

logger = logging.getLogger("compare")
OVERRIDES = ("model", "weights", "tokenizer", "implementation", "dataset", "data_source", "max_train_samples",
             "max_eval_samples", "num_epochs", "batch_size", "max_length")  # fmt: skip


def build_parser() -> ArgumentParser:
    """compare.py's own flags (recipe flags go through --set or after --)."""
    parser = ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="the study YAML file")
    for name in OVERRIDES:
        parser.add_argument(f"--{name}", help=f"--{name} for every row whose recipe takes it")
    parser.add_argument("--seeds", type=int, nargs="+", help="replace the study's seeds")
    parser.add_argument("--rows", nargs="+", help="run only these rows (and the questions among them)")
    parser.add_argument("--split_seed", type=int, help="replace the study's split seed")
    parser.add_argument(
        "--train_sizes", nargs="+", metavar="N",
        help="learning curves: run every row at each number of labelled training examples (e.g. 8 16 32 64 "
        "256 all; balanced, nested subsets drawn per seed; validation and test unchanged)",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="[TARGET:]FLAG=VALUE",
        help="a recipe flag for every row, or for one recipe's or row's runs (repeatable)",
    )  # fmt: skip
    parser.add_argument("--output_dir", default="outputs", help="the study folder is created inside")
    parser.add_argument("--launcher", choices=["python", "accelerate"], default="python",
                        help="run fine-tuning rows with python or accelerate launch")  # fmt: skip
    parser.add_argument(
        "--launch_args", default="", help="accelerate launch arguments (default: CPU threads)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="runs at once, each with its share of the CPU threads (e.g. small runs sharing one GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--keep_checkpoints", action="store_true",
        help="keep finished runs' resumable checkpoints (default: deleted once a run finishes)",
    )  # fmt: skip
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--dry_run", action="store_true", help="validate and log the commands, run nothing")
    parser.add_argument("--report_only", action="store_true", help="run nothing; report the finished runs")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run (or report) the study the arguments name; returns the report's record."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: give 1 or more runs at once")
    study = load_study(args.study)
    select(study, args.rows, args.seeds)
    if args.split_seed is not None:
        study.split_seed = args.split_seed
    overrides = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    apply_overrides(study, overrides, args.settings, extra)
    if args.train_sizes is not None:
        study.train_sizes = parse_train_sizes("--train_sizes", args.train_sizes)
    expand_train_sizes(study)
    study_dir = Path(args.output_dir) / study.name
    start = time.perf_counter()
    if args.report_only:
        records = [  # finished runs count as skipped, others as not run
            RunRecord(row.name, seed, run_dir, "skipped" if is_finished(run_dir) else "not_run")
            for row in study.rows
            for seed in study.seeds
            for run_dir in [study_dir / row.name / f"seed{seed}"]
        ]
    else:
        records = run_study(
            study, study_dir, args.launcher, args.launch_args, dry_run=args.dry_run, jobs=args.jobs,
            keep_checkpoints=args.keep_checkpoints,
        )  # fmt: skip
    if args.dry_run:
        return {}
    report = write_report(study, study_dir, records, time.perf_counter() - start, args.resamples)
    print(json.dumps({"report": str(study_dir / "report.md"), **report["counts"]}))
    for question in report["questions"]:
        for comparison in question["comparisons"]:
            print(f"{question['title']}: {comparison['sentence']}")
    return report


def cli() -> int:
    """The shell command: logging on, user errors as one line."""
    return command_line(main)


if __name__ == "__main__":
    sys.exit(cli())
