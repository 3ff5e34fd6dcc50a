"""Fake quantization: the documented round-trip bound |w − ŵ| ≤ scale/2 for every scheme, exact cases,
block shapes, dtypes, and the user errors of scheme parsing."""

from __future__ import annotations

import itertools

import pytest
import torch

from precdiff.errors import InputError
from precdiff.sensitivity import QuantScheme, fake_quantize, parse_granularity
from precdiff.sensitivity.quantizers import block_scales

SCHEMES = [
    QuantScheme(bits, granularity, size, symmetric)
    for bits, (granularity, size), symmetric in itertools.product(
        (8, 4), (("tensor", None), ("channel", None), ("group", 16), ("group", 7)), (True, False)
    )
]


def _weight() -> torch.Tensor:
    """[12, 50] Gaussian weights with an outlier column and an all-positive row."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(12, 50, generator=generator) * 0.02
    weight[:, 3] *= 30.0
    weight[5] = weight[5].abs()
    return weight


def _element_scales(weight: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Each element's block scale, broadcast to the weight's shape."""
    scales = block_scales(weight, scheme)
    rows, cols = weight.shape
    if scheme.granularity == "tensor":
        return scales.expand(rows, cols)
    if scheme.granularity == "channel":
        return scales[:, None].expand(rows, cols)
    size = scheme.group_size or 1
    return scales.view(rows, -1).repeat_interleave(size, dim=1)[:, :cols]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.label)
def test_round_trip_error_is_at_most_half_a_step(scheme: QuantScheme) -> None:
    weight = _weight()
    restored = fake_quantize(weight, scheme)
    assert restored.shape == weight.shape and restored.dtype == weight.dtype
    scales = _element_scales(weight, scheme)
    error = (weight - restored).abs()
    # float32 rounding of w/scale and q·scale: a relative 2^-23 of each term.
    slack = 4 * torch.finfo(torch.float32).eps * (weight.abs() + scales)
    assert bool((error <= scales / 2 + slack).all()), float((error - scales / 2).max())
    # The bound is tight enough to mean something: the error uses most of it somewhere.
    assert float((error / scales).max()) > 0.4


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.label)
def test_codes_per_block_fit_in_the_bit_width(scheme: QuantScheme) -> None:
    weight = _weight()
    restored = fake_quantize(weight, scheme)
    codes = torch.round(restored / _element_scales(weight, scheme))
    if scheme.granularity == "tensor":
        assert codes.unique().numel() <= 2**scheme.bits
    size = scheme.group_size if scheme.granularity == "group" else weight.shape[1]
    for start in range(0, weight.shape[1], size or 1):
        block = codes[:, start : start + (size or 1)]
        spread = block.amax(dim=1) - block.amin(dim=1)
        assert bool((spread <= 2**scheme.bits - 1).all())


def test_step_sizes_by_hand() -> None:
    weight = torch.tensor([[3.5, -1.0, 0.75], [0.0, 0.0, 0.0]])
    # int4 symmetric per channel: row 0 scale 3.5/7 = 0.5; 0.75/0.5 = 1.5 rounds half to even (2).
    restored = fake_quantize(weight, QuantScheme(4, "channel", None, True))
    assert restored.tolist() == [[3.5, -1.0, 1.0], [0.0, 0.0, 0.0]]
    # int4 asymmetric per tensor: range [-1, 3.5] → scale 4.5/15 = 0.3, zero point round(1/0.3) = 3.
    assert block_scales(weight, QuantScheme(4, "tensor", None, False)).tolist() == pytest.approx([0.3])
    # A constant positive block is exact asymmetric (its range includes 0 and the value).
    constant = torch.full((2, 4), 0.37)
    assert torch.equal(fake_quantize(constant, QuantScheme(4, "channel", None, False)), constant)
    assert torch.equal(fake_quantize(torch.zeros(3, 5), QuantScheme(8, "group", 2, False)), torch.zeros(3, 5))


def test_asymmetric_halves_the_step_of_one_sided_weights() -> None:
    weight = torch.linspace(0.0, 1.0, 64)[None]
    sym = block_scales(weight, QuantScheme(8, "tensor", None, True))
    asym = block_scales(weight, QuantScheme(8, "tensor", None, False))
    assert float(sym) == pytest.approx(1 / 127)
    assert float(asym) == pytest.approx(1 / 255)


def test_groups_are_independent() -> None:
    weight = torch.full((1, 8), 0.01)
    weight[0, 0] = 10.0  # an outlier in the first group of 4 only
    restored = fake_quantize(weight, QuantScheme(4, "group", 4, True))
    assert restored[0, 4:].tolist() == pytest.approx([0.01] * 4)
    assert restored[0, 1:4].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_weights_add_only_their_own_rounding(dtype: torch.dtype) -> None:
    weight = _weight().to(dtype)
    scheme = QuantScheme(8, "group", 16, True)
    restored = fake_quantize(weight, scheme)
    assert restored.dtype == dtype
    exact = weight.float()
    scales = _element_scales(exact, scheme)
    half_ulp = restored.float().abs() * torch.finfo(dtype).eps / 2
    slack = 4 * torch.finfo(torch.float32).eps * (exact.abs() + scales)
    assert bool(((exact - restored.float()).abs() <= scales / 2 + half_ulp + slack).all())


def test_embedding_rows_and_one_dimensional_weights() -> None:
    vector = torch.tensor([0.5, -0.25, 0.125])
    restored = fake_quantize(vector, QuantScheme(8, "channel", None, True))
    assert restored.shape == vector.shape
    with pytest.raises(TypeError, match="floating-point"):
        fake_quantize(torch.ones(2, 2, dtype=torch.int32), QuantScheme())


def test_parse_granularity() -> None:
    assert parse_granularity("tensor") == ("tensor", None)
    assert parse_granularity("Channel") == ("channel", None)
    assert parse_granularity("group:128") == ("group", 128)
    for bad in ("group:0", "rows", "group:"):
        with pytest.raises(InputError) as info:
            parse_granularity(bad)
        assert str(info.value) == (
            f"unknown --granularity {bad!r}; use tensor, channel or group:N with N >= 1, e.g. group:128 "
            "(granularity='group:128')"
        )


def test_scheme_validation_messages() -> None:
    with pytest.raises(InputError) as info:
        QuantScheme(bits=3).validate()
    assert str(info.value) == "--bits 3 is not supported; use --bits 8 or 4 (bits=8|4)"
    assert QuantScheme(4, "group", 128, False).label == "int4 group:128 asym"
