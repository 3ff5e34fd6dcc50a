"""``evalstat()``: two eval runs in, one :class:`EvalComparison` out.

Samples are paired by id within each (task, metric). A difference is *significant* when McNemar's
exact test rejects "no difference" at ``alpha`` (0/1 metrics: the exact test is the right one for
paired proportions) or, for other metrics, when the paired bootstrap interval excludes 0. The
``tolerance`` is the relative difference a user accepts (default 3 %): only a significant
difference larger than it counts as a finding (exit code 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from precdiff.errors import EvalResultsError, InputError
from precdiff.evalstat.readers import TaskScores, read_run
from precdiff.evalstat.results import A_BETTER, B_BETTER, NO_DIFFERENCE, EvalComparison, TaskComparison
from precdiff.evalstat.stats import discordant, mcnemar_exact, paired_bootstrap_ci

DEFAULT_TOLERANCE = 0.03
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class EvalstatOptions:
    """Field names match the CLI options (``--tolerance`` ...); ``alpha`` is ``1 - confidence``."""

    tolerance: float = DEFAULT_TOLERANCE
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not self.tolerance >= 0.0:
            raise InputError(
                f"--tolerance / tolerance must be ≥ 0 (a fraction, 0.03 = 3 %), got {self.tolerance}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise InputError(f"--confidence / confidence must be between 0 and 1, got {self.confidence}")
        if self.resamples < 100:
            raise InputError(f"--resamples / resamples must be ≥ 100, got {self.resamples}")

    @classmethod
    def from_cli(cls, **values: Any) -> EvalstatOptions:
        """Build from keyword arguments, dropping ``None`` so that defaults apply."""
        return cls(**{key: value for key, value in values.items() if value is not None})


def compare_task(a: TaskScores, b: TaskScores, options: EvalstatOptions) -> TaskComparison:
    """Scores, paired bootstrap interval, McNemar (0/1 metrics) and verdict of one (task, metric)."""
    ids = sorted(set(a.scores) & set(b.scores))
    xa = np.asarray([a.scores[i] for i in ids], dtype=np.float64)
    xb = np.asarray([b.scores[i] for i in ids], dtype=np.float64)
    score_a = float(xa.mean()) if ids else 0.0
    score_b = float(xb.mean()) if ids else 0.0
    low, high = paired_bootstrap_ci(
        xa, xb, confidence=options.confidence, resamples=options.resamples, seed=options.seed
    )
    binary = a.binary and b.binary
    alpha = 1.0 - options.confidence
    a_right = b_right = None
    p_value = None
    if binary:
        a_right, b_right = discordant(xa, xb)
        p_value = mcnemar_exact(a_right, b_right)
        significant = p_value < alpha
    else:
        significant = not (low <= 0.0 <= high)
    difference = score_b - score_a
    relative = difference / score_a if score_a != 0.0 else None
    verdict = NO_DIFFERENCE if not significant else (B_BETTER if difference > 0 else A_BETTER)
    beyond = significant and (relative is None or abs(relative) > options.tolerance)
    return TaskComparison(
        task=a.task, metric=a.metric, paired=len(ids),
        only_a=len(set(a.scores) - set(b.scores)), only_b=len(set(b.scores) - set(a.scores)),
        score_a=score_a, score_b=score_b, difference=difference, ci_low=low, ci_high=high,
        relative=relative, binary=binary, a_only_right=a_right, b_only_right=b_right,
        p_value=p_value, significant=significant, verdict=verdict, beyond_tolerance=beyond,
    )  # fmt: skip


def evalstat(
    a: str | os.PathLike[str], b: str | os.PathLike[str], *, options: EvalstatOptions | None = None
) -> EvalComparison:
    """Compare two eval runs' per-sample results task by task.

    Args:
        a: run A: a per-sample results file or a directory of them (lm-eval, evalscope, OpenCompass).
        b: run B, same forms (the format may differ from A's).
        options: tolerance, confidence, bootstrap resamples and seed.

    Returns:
        An :class:`EvalComparison`; ``bool(result)`` is False when some task differs significantly
        by more than the tolerance.

    Raises:
        EvalResultsError: unreadable, malformed or unknown files, or no task in common.

    Example:
        >>> result = evalstat("gpu/samples_gsm8k.jsonl", "npu/samples_gsm8k.jsonl")  # doctest: +SKIP
        >>> result.tasks[0].verdict  # doctest: +SKIP
        'no significant difference'
    """
    options = options or EvalstatOptions()
    run_a, run_b = read_run(a), read_run(b)
    by_key_a = {(t.task, t.metric): t for t in run_a.tasks}
    by_key_b = {(t.task, t.metric): t for t in run_b.tasks}
    common = [key for key in by_key_a if key in by_key_b]
    if not common:
        raise EvalResultsError(
            f"{a} and {b} have no task and metric in common (A: "
            f"{', '.join('/'.join(k) for k in list(by_key_a)[:4])}; B: "
            f"{', '.join('/'.join(k) for k in list(by_key_b)[:4])}); pass two runs of the same tasks"
        )
    unpaired = [key for key in common if not set(by_key_a[key].scores) & set(by_key_b[key].scores)]
    if unpaired:
        task, metric = unpaired[0]
        raise EvalResultsError(
            f"{task} ({metric}): no sample id is in both runs, so nothing can be paired; pass runs over "
            "the same samples"
        )
    return EvalComparison(
        a=str(a), b=str(b), format_a=run_a.format, format_b=run_b.format,
        tolerance=options.tolerance, confidence=options.confidence, resamples=options.resamples,
        seed=options.seed, alpha=1.0 - options.confidence,
        tasks=tuple(compare_task(by_key_a[key], by_key_b[key], options) for key in common),
        unmatched_a=tuple("/".join(k) for k in by_key_a if k not in by_key_b),
        unmatched_b=tuple("/".join(k) for k in by_key_b if k not in by_key_a),
    )  # fmt: skip
