"""Paired statistics of two runs' per-sample scores: pure float64 functions.

- :func:`paired_bootstrap_ci`: percentile interval of mean(B) - mean(A) over resampled sample ids
  (the same ids for both runs: pairing removes the between-item variance), with a fixed seed so
  the interval is reproducible.
- :func:`mcnemar_exact`: McNemar's exact test for 0/1 scores: under "no difference" the items one
  run got right and the other wrong split 50/50 between the runs; two-sided binomial p-value.

Empty inputs give a zero difference, a (0, 0) interval and p = 1 (nothing to tell apart).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Resamples drawn per block: bounds the index matrix to ~8 MB for 1,000 samples whatever the count.
_BLOCK = 1000


def paired_bootstrap_ci(
    a: NDArray[np.float64], b: NDArray[np.float64], *, confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(b - a)`` over samples paired by position.

    Args:
        a: scores of run A, one per sample ([n]).
        b: scores of run B for the same samples in the same order ([n]).
        confidence: e.g. 0.95.
        resamples: bootstrap resamples.
        seed: seed of numpy's default generator.

    Returns:
        ``(low, high)``; ``(0.0, 0.0)`` for no samples; NaN scores give NaN bounds.
    """
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = d.size
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, _BLOCK):
        count = min(_BLOCK, resamples - start)
        idx = rng.integers(0, n, size=(count, n))
        means[start : start + count] = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def discordant(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[int, int]:
    """``(A right & B wrong, A wrong & B right)`` counts of 0/1 scores."""
    a_right, b_right = np.asarray(a) == 1.0, np.asarray(b) == 1.0
    return int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    from scipy.stats import binomtest

    total = a_only + b_only
    if total == 0:
        return 1.0
    return float(binomtest(min(a_only, b_only), total, 0.5, alternative="two-sided").pvalue)
