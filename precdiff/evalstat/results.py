"""Frozen results of ``precdiff evalstat``; ``to_dict()`` is the JSON report (``docs/evalstat.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NO_DIFFERENCE = "no significant difference"
A_BETTER = "A better"
B_BETTER = "B better"


@dataclass(frozen=True)
class TaskComparison:
    """One (task, metric) of both runs, over the samples present in both."""

    task: str
    metric: str
    paired: int  # samples in both runs
    only_a: int  # samples in A only (not compared)
    only_b: int
    score_a: float  # mean over the paired samples
    score_b: float
    difference: float  # score_b - score_a
    ci_low: float  # paired bootstrap interval of the difference
    ci_high: float
    relative: float | None  # difference / score_a (None when score_a is 0)
    binary: bool  # 0/1 scores: McNemar's test applies
    a_only_right: int | None  # discordant pairs (binary metrics only)
    b_only_right: int | None
    p_value: float | None  # McNemar exact (binary metrics only)
    significant: bool
    verdict: str  # NO_DIFFERENCE | A_BETTER | B_BETTER
    beyond_tolerance: bool  # significant and |relative| > tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "paired": self.paired,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "score_a": self.score_a,
            "score_b": self.score_b,
            "difference": self.difference,
            "ci": [self.ci_low, self.ci_high],
            "relative": self.relative,
            "binary": self.binary,
            "discordant": (
                {"a_only_right": self.a_only_right, "b_only_right": self.b_only_right}
                if self.binary
                else None
            ),
            "p_value": self.p_value,
            "significant": self.significant,
            "verdict": self.verdict,
            "beyond_tolerance": self.beyond_tolerance,
        }


@dataclass(frozen=True)
class EvalComparison:
    """Every task of two eval runs; ``bool()`` is False when a task differs beyond the tolerance."""

    a: str
    b: str
    format_a: str
    format_b: str
    tolerance: float
    confidence: float
    resamples: int
    seed: int
    alpha: float
    tasks: tuple[TaskComparison, ...]
    unmatched_a: tuple[str, ...]  # "task/metric" only in A
    unmatched_b: tuple[str, ...]

    def __bool__(self) -> bool:
        return not any(t.beyond_tolerance for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": {
                "a": {"path": self.a, "format": self.format_a},
                "b": {"path": self.b, "format": self.format_b},
            },
            "settings": {
                "tolerance": self.tolerance,
                "confidence": self.confidence,
                "resamples": self.resamples,
                "seed": self.seed,
                "alpha": self.alpha,
            },
            "tasks": [t.to_dict() for t in self.tasks],
            "unmatched": {"a_only": list(self.unmatched_a), "b_only": list(self.unmatched_b)},
            "beyond_tolerance": not bool(self),
        }
