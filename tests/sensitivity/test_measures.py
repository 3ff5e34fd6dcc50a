"""Each measure against hand-computed values, and its edge-case conventions (numpy and torch inputs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from precdiff.sensitivity import measures

ARRAYS = [np.asarray, torch.tensor]


@pytest.mark.parametrize("make", ARRAYS)
@pytest.mark.parametrize(
    ("p", "q", "alpha", "expected"),
    [
        ([[3, 1]], [[1, 3]], 0.0, 0.5 * math.log(3)),  # 3/4 ln3 − 1/4 ln3
        ([[3, 1]], [[1, 3]], 1.0, math.log(2) / 3),  # smoothed to (2/3, 1/3) vs (1/3, 2/3)
        ([[5, 0, 5]], [[5, 0, 5]], 1.0, 0.0),
        ([[0, 0]], [[0, 0]], 1.0, 0.0),  # nothing counted: uniform vs uniform
        ([[4, 0], [2, 2]], [[4, 0], [2, 2]], 0.5, 0.0),
        ([[2, 2], [3, 1]], [[2, 2], [1, 3]], 0.0, 0.25 * math.log(3)),  # the mean over two rows
    ],
)
def test_histogram_kl(
    make: object, p: list[list[int]], q: list[list[int]], alpha: float, expected: float
) -> None:
    value = measures.histogram_kl(make(p), make(q), alpha)  # type: ignore[operator]
    assert value == pytest.approx(expected, abs=1e-12)


def test_histogram_kl_edges() -> None:
    assert math.isnan(measures.histogram_kl(np.zeros((0, 4)), np.zeros((0, 4))))
    # Unsmoothed, a bin empty in Q but not in P is infinitely surprising; smoothing keeps it finite.
    assert measures.histogram_kl([[1, 1]], [[2, 0]], alpha=0.0) == math.inf
    assert math.isfinite(measures.histogram_kl([[1, 1]], [[2, 0]], alpha=1.0))
    with pytest.raises(ValueError, match="same shape"):
        measures.histogram_kl([[1, 2]], [[1, 2, 3]])


@pytest.mark.parametrize("make", ARRAYS)
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0, 100.0], 99.0 / 2.5),  # quartiles 2.25 and 4.75
        ([0.0, 1.0, 2.0, 3.0, 4.0], 4.0 / 2.0),
        ([7.0, 7.0, 7.0], 0.0),  # constant
        ([0.0, 0.0, 0.0, 0.0, 0.0, 1.0], math.inf),  # Q3 == Q1 < max
    ],
)
def test_dispersion(make: object, values: list[float], expected: float) -> None:
    assert measures.dispersion(make(values)) == pytest.approx(expected)  # type: ignore[operator]


def test_dispersion_edges() -> None:
    assert math.isnan(measures.dispersion([]))
    assert math.isnan(measures.dispersion([1.0, math.nan, 2.0]))
    assert measures.dispersion_from_quartiles(-1.0, 3.0, 0.0, 1.0) == 4.0
    assert math.isnan(measures.dispersion_from_quartiles(math.nan, 3.0, 0.0, 1.0))


def test_histogram_quartiles() -> None:
    assert measures.histogram_quartiles([1, 1, 1, 1], 0.0, 4.0) == pytest.approx((1.0, 3.0))
    # All mass in the second of two bins over [0, 2]: uniform inside [1, 2].
    assert measures.histogram_quartiles([0, 8], 0.0, 2.0) == pytest.approx((1.25, 1.75))
    assert all(math.isnan(v) for v in measures.histogram_quartiles([0, 0], 0.0, 1.0))


def test_energy_ratio_of_known_singular_values() -> None:
    assert measures.energy_ratio([3.0, 1.0]) == 0.75
    assert measures.energy_ratio([0.0, 0.0]) == 0.0
    assert math.isnan(measures.energy_ratio([]))
    # A matrix built with singular values 4, 2, 2 under random orthogonal bases: 4 / 8.
    generator = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(5, 3, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(4, 3, generator=generator, dtype=torch.float64))
    matrix = u @ torch.diag(torch.tensor([4.0, 2.0, 2.0], dtype=torch.float64)) @ v.T
    assert measures.weight_energy_ratio(matrix.float()) == pytest.approx(0.5, abs=1e-6)
    assert measures.weight_energy_ratio(torch.zeros(3, 3)) == 0.0
    assert math.isnan(measures.weight_energy_ratio(torch.tensor([[math.nan, 1.0]])))
    rank_one = torch.outer(torch.arange(1.0, 4.0), torch.arange(1.0, 3.0))
    assert measures.weight_energy_ratio(rank_one) == pytest.approx(1.0)


@pytest.mark.parametrize("make", ARRAYS)
def test_skewness(make: object) -> None:
    # [0, 0, 0, 3]: mean 3/4, m2 = 27/16, m3 = 81/32, skewness = (81/32) / (27/16)^1.5 = 2/√3.
    assert measures.skewness(make([0.0, 0.0, 0.0, 3.0])) == pytest.approx(2 / math.sqrt(3))  # type: ignore[operator]
    assert measures.skewness(make([-1.0, 0.0, 1.0])) == 0.0  # type: ignore[operator]
    assert measures.skewness(make([2.0, 2.0])) == 0.0  # type: ignore[operator]
    assert math.isnan(measures.skewness([]))


def test_skewness_from_shifted_sums_does_not_depend_on_the_shift() -> None:
    x = np.array([0.0, 0.0, 0.0, 3.0]) + 1e6
    for shift in (1e6, 1e6 + 0.75, 1e6 - 5.0):
        d = x - shift
        value = measures.skewness_from_sums(x.size, d.sum(), (d**2).sum(), (d**3).sum())
        assert value == pytest.approx(2 / math.sqrt(3), rel=1e-9)
    assert math.isnan(measures.skewness_from_sums(0, 0.0, 0.0, 0.0))


@pytest.mark.parametrize(
    ("error_sq", "ref_sq", "expected"),
    [(1.0, 4.0, 0.5), (0.0, 0.0, 0.0), (1.0, 0.0, math.inf), (math.nan, 1.0, math.nan)],
)
def test_rel_l2_from_sums(error_sq: float, ref_sq: float, expected: float) -> None:
    value = measures.rel_l2_from_sums(error_sq, ref_sq)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


@pytest.mark.parametrize(
    ("dot", "a_sq", "b_sq", "expected"),
    [(2.0, 1.0, 4.0, 1.0), (0.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 0.0), (-1.0, 1.0, 1.0, -1.0)],
)
def test_cosine_from_sums(dot: float, a_sq: float, b_sq: float, expected: float) -> None:
    assert measures.cosine_from_sums(dot, a_sq, b_sq) == expected
    assert math.isnan(measures.cosine_from_sums(math.nan, 1.0, 1.0))


def test_kl_from_logits() -> None:
    # softmax([0, ln3]) = (1/4, 3/4) against (3/4, 1/4): 1/4 ln(1/3) + 3/4 ln 3 = ln(3)/2.
    p = torch.tensor([[0.0, math.log(3)], [1.0, 2.0]])
    q = torch.tensor([[math.log(3), 0.0], [1.0, 2.0]])
    assert measures.kl_from_logits(p, q).tolist() == pytest.approx([math.log(3) / 2, 0.0], abs=1e-7)
