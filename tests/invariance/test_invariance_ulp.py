"""ULP distance and tensor comparison: a table of awkward cases per dtype (±0, subnormals, NaN, inf)."""

from __future__ import annotations

import math

import pytest
import torch

from precdiff.invariance.ulp import bitwise_diff, ordered_bits, ulp_distance

F32_TINY = torch.finfo(torch.float32).tiny  # smallest normal
F32_SUB = 1.401298464324817e-45  # smallest subnormal


def _next(x: float, dtype: torch.dtype, steps: int = 1) -> float:
    t = torch.tensor([x], dtype=dtype)
    for _ in range(steps):
        t = torch.nextafter(t, torch.tensor([math.inf], dtype=dtype))
    return float(t)


# (a, b, dtype, expected ULP distance; nan = exactly one side is NaN)
ROWS = [
    (1.0, 1.0, torch.float32, 0),
    (0.0, -0.0, torch.float32, 0),
    (1.0, _next(1.0, torch.float32), torch.float32, 1),
    (1.0, _next(1.0, torch.float32, 5), torch.float32, 5),
    (-F32_SUB, F32_SUB, torch.float32, 2),  # across zero: -sub -> 0 -> +sub
    (0.0, F32_TINY, torch.float32, 2**23),  # every subnormal is one step
    (float(torch.finfo(torch.float32).max), math.inf, torch.float32, 1),
    (-math.inf, math.inf, torch.float32, 2 * 0x7F800000),
    (math.nan, math.nan, torch.float32, 0),
    (math.nan, 1.0, torch.float32, math.nan),
    (1.0, _next(1.0, torch.bfloat16), torch.bfloat16, 1),
    (1.0, 2.0, torch.bfloat16, 128),  # 7 mantissa bits
    (1.0, 2.0, torch.float16, 1024),  # 10 mantissa bits
    (1.0, 2.0, torch.float32, 2**23),
    (-1.0, 1.0, torch.float16, 2 * 0x3C00),
    (5.960464477539063e-08, 0.0, torch.float16, 1),  # fp16 smallest subnormal
    (1.0, 2.0, torch.float64, 2**52),
]


@pytest.mark.parametrize("a, b, dtype, expected", ROWS)
def test_ulp_distance_table(a: float, b: float, dtype: torch.dtype, expected: float) -> None:
    ta, tb = torch.tensor([a], dtype=dtype), torch.tensor([b], dtype=dtype)
    got = float(ulp_distance(ta, tb)[0])
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected
    assert float(ulp_distance(tb, ta)[0]) == got or math.isnan(got)  # symmetric


def test_ordered_bits_is_monotonic_over_all_bf16_values() -> None:
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    values = every[~torch.isnan(every)]
    order = torch.argsort(values.float(), stable=True)
    keys = ordered_bits(values[order])
    assert bool((keys[1:] >= keys[:-1]).all())


def test_compare_reports_bitwise_ulp_abs_and_nonfinite() -> None:
    ref = torch.tensor([1.0, 0.0, math.nan, math.inf, 2.0, math.nan])
    got = torch.tensor([_next(1.0, torch.float32), -0.0, math.nan, math.inf, 2.5, 3.0])
    diff = bitwise_diff(ref, got)
    assert not diff.bitwise_equal
    assert diff.differing == 4  # ±0 differs in bits, the NaN/NaN pair has equal payloads here
    assert diff.max_ulp == int(ulp_distance(torch.tensor([2.0]), torch.tensor([2.5]))[0])
    assert diff.max_abs_diff == 0.5
    assert diff.nonfinite_mismatches == 1  # NaN vs 3.0
    assert diff.elements == 6


def test_compare_equal_integer_and_empty() -> None:
    assert bitwise_diff(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3])).bitwise_equal
    diff = bitwise_diff(torch.tensor([1, 2, 3]), torch.tensor([1, 7, 3]))
    assert (diff.bitwise_equal, diff.max_ulp, diff.max_abs_diff) == (False, 5, 5.0)
    assert bitwise_diff(torch.tensor([True]), torch.tensor([False])).max_ulp == 1
    assert bitwise_diff(torch.empty(0), torch.empty(0)).bitwise_equal


def test_compare_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="equal dtypes and shapes"):
        bitwise_diff(torch.zeros(2), torch.zeros(3))
