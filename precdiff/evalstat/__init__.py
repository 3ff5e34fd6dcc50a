"""Are two eval runs' scores different, beyond chance? Per-sample results of lm-eval, evalscope and
OpenCompass, paired by sample id, with a paired bootstrap interval and McNemar's exact test."""

from __future__ import annotations

from precdiff.evalstat.compare import EvalstatOptions, evalstat
from precdiff.evalstat.readers import EvalRun, TaskScores, read_run
from precdiff.evalstat.results import EvalComparison, TaskComparison

__all__ = [
    "EvalComparison",
    "EvalRun",
    "EvalstatOptions",
    "TaskComparison",
    "TaskScores",
    "evalstat",
    "read_run",
]
