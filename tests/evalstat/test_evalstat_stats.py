"""Edge cases of the paired statistics (empty, identical, NaN, one-sided discordance)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from precdiff.evalstat.stats import discordant, mcnemar_exact, paired_bootstrap_ci

CI = {"confidence": 0.95, "resamples": 1000, "seed": 0}


def test_bootstrap_edges() -> None:
    empty = np.zeros(0)
    assert paired_bootstrap_ci(empty, empty, **CI) == (0.0, 0.0)
    same = np.array([0.0, 1.0, 1.0, 0.5])
    assert paired_bootstrap_ci(same, same, **CI) == (0.0, 0.0)
    shifted = paired_bootstrap_ci(same, same + 0.25, **CI)
    assert shifted == pytest.approx((0.25, 0.25))
    low, high = paired_bootstrap_ci(np.array([0.0, math.nan]), np.array([1.0, 1.0]), **CI)
    assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize(
    ("a_only", "b_only", "p"),
    [(0, 0, 1.0), (1, 1, 1.0), (2, 0, 0.5), (0, 10, 2 * 0.5**10), (5, 5, 1.0)],
)
def test_mcnemar_exact(a_only: int, b_only: int, p: float) -> None:
    assert mcnemar_exact(a_only, b_only) == pytest.approx(p)


def test_discordant_counts() -> None:
    a = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    b = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
    assert discordant(a, b) == (2, 1)
