"""Studies: many runs (rows x seeds) on one split, compared with error bars and paired tests.

``recipes/compare.py STUDY.yaml`` is the command (:mod:`hf_spam.commands.compare`); :mod:`.spec` reads
the study file, :mod:`.runner` runs each row and seed in its own process, :mod:`.results` reads the run
folders back, :mod:`.stats` has the tests and intervals, :mod:`.report` writes ``report.md/.json/.csv``
and :mod:`.plots` the figures.
"""

from ..errors import StudyError
from .report import write_report
from .runner import RunRecord, run_study
from .spec import Study, apply_overrides, load_study, select
from .stats import bootstrap_interval, compare, mcnemar_exact, paired_bootstrap_interval

__all__ = [
    "RunRecord",
    "Study",
    "StudyError",
    "apply_overrides",
    "bootstrap_interval",
    "compare",
    "load_study",
    "mcnemar_exact",
    "paired_bootstrap_interval",
    "run_study",
    "select",
    "write_report",
]
