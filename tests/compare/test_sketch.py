"""Sketch estimator of rel-L2 / cosine between summary captures, against exact values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from precdiff.capture.sketch import WIDTH, sketch_and_checksum
from precdiff.compare import metrics
from precdiff.compare.sketch_estimate import estimate, relative_std


def _estimate(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, bool]:
    sa, ca = sketch_and_checksum(a)
    sb, cb = sketch_and_checksum(b)
    l2a = float(a.double().norm())
    l2b = float(b.double().norm())
    est = estimate(sa.tolist(), sb.tolist(), l2a, l2b, int(ca), int(cb))
    return est.rel_l2, est.cosine, est.exact


def _exact(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    x, y = a.double().numpy().reshape(-1), b.double().numpy().reshape(-1)
    return metrics.rel_l2_of(x, y), metrics.cosine_of(x, y)


def test_sketch_is_linear_deterministic_and_shape_agnostic() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 700, generator=gen), torch.randn(3, 700, generator=gen)
    sa, _ = sketch_and_checksum(a)
    sb, _ = sketch_and_checksum(b)
    sd, _ = sketch_and_checksum(b.double() - a.double())
    assert torch.allclose(sb - sa, sd, rtol=0, atol=1e-12)
    again, _ = sketch_and_checksum(a.clone())
    assert torch.equal(again, sa) and sa.shape == (WIDTH,)
    assert torch.equal(sketch_and_checksum(a.reshape(-1))[0], sa)  # flattened order, not shape


def test_checksum_recognises_bitwise_equality_only() -> None:
    a = torch.randn(4096).to(torch.bfloat16)
    b = a.clone()
    assert _estimate(a, b) == (0.0, 1.0, True)
    b.view(torch.int16)[1234] += 1  # one bf16 ulp
    rel, _, exact = _estimate(a, b)
    assert not exact and rel > 0.0
    swapped = a.clone()
    swapped[[0, 1]] = a[[1, 0]]  # same multiset of values, other positions
    if not torch.equal(swapped, a):
        assert not _estimate(a, swapped)[2]


@pytest.mark.parametrize(
    "dtype, scale",
    [(torch.float32, 1e-7), (torch.float32, 1e-4), (torch.bfloat16, 1e-2), (torch.bfloat16, 0.3)],
    ids=["fp32-1e-7", "fp32-1e-4", "bf16-1e-2", "bf16-0.3"],
)
def test_estimates_track_exact_values_within_the_documented_spread(dtype: torch.dtype, scale: float) -> None:
    """Real-shaped hidden states ([tokens, hidden]) with one massive token and one outlier channel."""
    gen = torch.Generator().manual_seed(1)
    ratios = []
    for trial in range(12):
        a = torch.randn(64, 512, generator=gen)
        a[0] *= 200.0  # a massive-activation token
        a[:, 7] *= 30.0  # an outlier channel
        noise = torch.randn(64, 512, generator=gen) * a.abs().mean() * scale
        if trial % 2:
            noise[:, 7] *= 20.0  # an error confined mostly to one channel
        a_q, b_q = a.to(dtype), (a + noise).to(dtype)
        rel, cosine, exact = _estimate(a_q, b_q)
        rel_true, cos_true = _exact(a_q, b_q)
        assert not exact and rel_true > 0
        ratios.append(rel / rel_true)
        # 1 − cosine carries the squared error: twice the norm's relative spread (float64 noise below 1e-13).
        assert abs((1 - cosine) - (1 - cos_true)) <= 12 * relative_std(WIDTH) * (1 - cos_true) + 1e-13
    spread = relative_std(WIDTH)
    assert all(abs(r - 1.0) < 5 * spread for r in ratios), ratios
    assert abs(float(np.mean(ratios)) - 1.0) < 3 * spread / math.sqrt(len(ratios)) + 0.01


def test_edge_conventions() -> None:
    zero = [0.0] * WIDTH
    assert estimate(zero, zero, 0.0, 0.0).rel_l2 == 0.0 and estimate(zero, zero, 0.0, 0.0).cosine == 1.0
    one = [1.0] + [0.0] * (WIDTH - 1)
    assert estimate(zero, one, 0.0, 1.0).rel_l2 == math.inf
    assert math.isnan(estimate(zero, [math.nan] * WIDTH, 1.0, 1.0).rel_l2)
    with pytest.raises(ValueError, match="different widths"):
        estimate(zero, zero[:10], 1.0, 1.0)


def test_non_finite_elements_stay_out_of_the_sketch_but_not_the_checksum() -> None:
    a = torch.ones(1000)
    b = a.clone()
    b[3] = math.inf
    _, ca = sketch_and_checksum(a)
    sb, cb = sketch_and_checksum(b)
    assert int(ca) != int(cb)
    assert torch.all(torch.isfinite(sb))
