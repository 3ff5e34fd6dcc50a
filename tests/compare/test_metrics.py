"""Metric tables with the edge cases, streaming == one-shot, tolerances and noise floors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from precdiff.compare import metrics as m
from precdiff.compare import tolerances as tol

nan, inf = math.nan, math.inf


def build_torch(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# (a, b, rel_l2, cosine, max_abs, mean_abs, frac_beyond at Tolerance(0.1, 0))
ROWS: list[tuple[str, list[float], list[float], float, float, float, float, float]] = [
    ("identical", [1.0, -2.0, 3.0], [1.0, -2.0, 3.0], 0.0, 1.0, 0.0, 0.0, 0.0),
    ("scaled", [3.0, 4.0], [6.0, 8.0], 1.0, 1.0, 4.0, 3.5, 1.0),
    ("sign flip", [1.0, 0.0], [-1.0, 0.0], 2.0, -1.0, 2.0, 1.0, 0.5),
    ("orthogonal", [1.0, 0.0], [0.0, 1.0], math.sqrt(2.0), 0.0, 1.0, 1.0, 1.0),
    ("both zero", [0.0, 0.0], [0.0, 0.0], 0.0, 1.0, 0.0, 0.0, 0.0),
    ("reference zero", [0.0, 0.0], [0.0, 2.0], inf, 0.0, 2.0, 1.0, 0.5),
    ("candidate zero", [3.0, 4.0], [0.0, 0.0], 1.0, 0.0, 4.0, 3.5, 1.0),
    ("empty", [], [], 0.0, 1.0, 0.0, 0.0, 0.0),
    ("same NaN", [nan, 3.0, 4.0], [nan, 3.0, 4.0], 0.0, 1.0, 0.0, 0.0, 0.0),
    ("same Inf", [inf, -inf, 1.0], [inf, -inf, 1.0], 0.0, 1.0, 0.0, 0.0, 0.0),
    ("NaN vs number", [nan, 3.0], [1.0, 3.0], nan, nan, nan, nan, 0.5),
    ("Inf vs -Inf", [inf, 3.0], [-inf, 3.0], nan, nan, nan, nan, 0.5),
    ("NaN vs Inf", [nan, 1.0], [inf, 1.0], nan, nan, nan, nan, 0.5),
    (
        "finite part still measured",
        [inf, 3.0, 4.0],
        [inf, 3.0, 4.5],
        0.1,
        27 / (5 * math.sqrt(29.25)),
        0.5,
        0.25,
        1 / 3,
    ),
]


def close(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == y or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-12)


@pytest.mark.parametrize("array_type", [np.array, build_torch], ids=["numpy", "torch"])
@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_metric_table(row: tuple[Any, ...], array_type: Callable[[list[float]], Any]) -> None:
    _, a, b, rel, cos, mx, mean, beyond = row
    s = m.accumulate(array_type(a), array_type(b), m.Tolerance(0.1, 0.0))
    assert close(m.rel_l2(s), rel)
    assert close(m.cosine(s), cos)
    assert close(m.max_abs(s), mx)
    assert close(m.mean_abs(s), mean)
    assert close(m.frac_beyond(s), beyond)


def test_nonfinite_counts_are_reported() -> None:
    s = m.accumulate([nan, inf, 1.0, -inf, 2.0], [nan, inf, inf, inf, nan])
    assert (s.nan_a, s.nan_b, s.inf_a, s.inf_b) == (1, 2, 2, 3)
    assert s.nonfinite_mismatch == 3  # 1.0 vs inf, -inf vs inf, 2.0 vs nan
    assert not s.exact and s.n_beyond == 3


def test_exactness_ignores_signed_zero_only() -> None:
    assert m.accumulate([0.0, 1.0], [-0.0, 1.0]).exact
    assert not m.accumulate([0.0, 1.0], [0.0, np.nextafter(1.0, 2.0)]).exact


def test_streaming_equals_one_shot_and_numpy() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(300_001)  # > CACHE_ELEMENTS: exercises the cache slicing too
    b = a + 1e-3 * rng.standard_normal(a.size)
    whole = m.accumulate(a, b, m.Tolerance(1e-3, 1e-6))
    cuts = np.sort(rng.choice(np.arange(1, a.size), size=7, replace=False))
    streamed = m.PairSums()
    for x, y in zip(np.split(a, cuts), np.split(b, cuts)):
        streamed = m.merge(streamed, m.accumulate(x, y, m.Tolerance(1e-3, 1e-6)))
    d = b - a
    assert math.isclose(m.rel_l2(streamed), np.linalg.norm(d) / np.linalg.norm(a), rel_tol=1e-12)
    assert math.isclose(m.rel_l2(whole), m.rel_l2(streamed), rel_tol=1e-12)
    assert math.isclose(
        m.cosine(streamed), float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), rel_tol=1e-12
    )
    assert m.max_abs(streamed) == m.max_abs(whole) == float(np.abs(d).max())
    assert math.isclose(m.mean_abs(streamed), float(np.abs(d).mean()), rel_tol=1e-12)
    expected_beyond = int(np.count_nonzero(np.abs(d) > 1e-6 + 1e-3 * np.abs(a)))
    assert streamed.n_beyond == whole.n_beyond == expected_beyond
    assert streamed.n == whole.n == a.size


def test_one_shot_helpers_take_the_reference_first() -> None:
    assert m.rel_l2_of([1.0, 0.0], [1.0, 1.0]) == 1.0  # divides by the reference's norm
    assert m.rel_l2_of([1.0, 1.0], [1.0, 0.0]) == pytest.approx(1 / math.sqrt(2))
    assert m.cosine_of([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 / math.sqrt(2))
    assert m.max_abs_of([1.0, 2.0], [1.5, 2.0]) == 0.5
    assert m.frac_beyond_of([1.0, 2.0], [1.5, 2.0], m.Tolerance(0.1, 0.0)) == 0.5


def test_mismatched_block_sizes_are_a_bug() -> None:
    with pytest.raises(ValueError):
        m.accumulate([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("l2_a", "l2_b", "expected"),
    [
        (2.0, 3.0, 0.5),
        (0.0, 0.0, 0.0),
        (0.0, 1.0, inf),
        (nan, 1.0, nan),
        (4.0, 4.0, 0.0),
    ],
)
def test_norm_ratio_bound(l2_a: float, l2_b: float, expected: float) -> None:
    assert close(m.norm_ratio_bound(l2_a, l2_b), expected)


@pytest.mark.parametrize(
    ("codes", "floor", "rtol"),
    [
        (("F32", "F32"), 0.5 * 2.0**-12, 1e-5),
        (("F32", "BF16"), 0.5 * 2.0**-4, 2.0**-7),
        (("BF16", "F16"), 0.5 * 2.0**-4, 2.0**-7),
        (("F16", "F64"), 0.5 * 2.0**-5.5, 2.0**-10),
        (("I64", "I64"), 0.0, 0.0),
        (("I64", "F32", "BF16"), 0.5 * 2.0**-4, 2.0**-7),  # the run's compute dtype counts too
    ],
)
def test_pair_tolerances_follow_the_less_precise_dtype(
    codes: tuple[str, ...], floor: float, rtol: float
) -> None:
    assert tol.noise_floor(*codes) == pytest.approx(floor)
    assert tol.pair_tolerance(*codes)[0] == rtol


def test_near_tie_threshold() -> None:
    assert tol.near_tie_nats("F32", "F32") == 0.01
    assert tol.near_tie_nats("F32", "BF16") == 16 * 2.0**-8
