"""Bit-level distance between two tensors: bitwise equality, ULPs and the largest absolute difference.

ULP distance is defined on the bit patterns, not on values, so that it is exact for every dtype:

- a float's bits are read as a signed integer ``i`` of the same width and mapped to an *ordered*
  integer: ``i`` when the sign bit is clear, ``-(i & magnitude_mask)`` when it is set. Consecutive
  representable values then map to consecutive integers, ``+0`` and ``-0`` both map to 0 (distance 0,
  although they are not bitwise equal), the largest finite value is 1 step from ``inf``, and
  subnormals are counted like any other step.
- NaN: two NaNs (any payloads) are 0 ULPs apart; a NaN against a number has no ULP distance and is
  counted in ``nonfinite_mismatches`` instead (excluded from ``max_ulp`` and ``max_abs_diff``).
- ``max_abs_diff`` is taken in float64 over the pairs where both values are finite; a pair where
  one or both values are infinite and they differ is a ``nonfinite_mismatch`` (its ULP distance still
  counts, it is finite).
- Integer and bool tensors: the ULP distance is ``|a - b|`` on the values (bool as 0/1).
- 64-bit floats: the ordered integers are subtracted in float64, so distances above 2**53 steps are
  rounded (precdiff's models never run in float64; the edge is documented, not hidden).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# Signed integer dtype of the same width as each float dtype (its bit pattern is read through it).
_BITS_AS_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class TensorDiff:
    """How far a tensor is from its reference, element by element.

    Attributes:
        bitwise_equal: every element has the same bit pattern (so ``-0 != +0``, NaN payloads count).
        max_ulp: largest ULP distance over the comparable elements (0 when equal).
        max_abs_diff: largest ``|a - b|`` in float64 over pairs where both are finite.
        nonfinite_mismatches: pairs where exactly one value is NaN, or non-finite values that differ.
        differing: number of elements whose bit patterns differ.
        elements: number of elements compared.
    """

    bitwise_equal: bool
    max_ulp: int
    max_abs_diff: float
    nonfinite_mismatches: int
    differing: int
    elements: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "bitwise_equal": self.bitwise_equal,
            "max_ulp": self.max_ulp,
            "max_abs_diff": self.max_abs_diff,
            "nonfinite_mismatches": self.nonfinite_mismatches,
            "differing": self.differing,
            "elements": self.elements,
        }


def ordered_bits(x: torch.Tensor) -> torch.Tensor:
    """Map a float tensor to int64 integers ordered like the floats (see the module docstring)."""
    if not x.is_floating_point():
        raise TypeError(f"ordered_bits needs a float tensor, got {x.dtype}")
    width = x.element_size()
    bits = x.contiguous().view(_BITS_AS_INT[width]).to(torch.int64)
    magnitude_mask = (1 << (8 * width - 1)) - 1
    return torch.where(bits < 0, -(bits & magnitude_mask), bits)


def bit_patterns(x: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of ``x`` as signed integers of the same width (bool as uint8)."""
    if x.dtype == torch.bool:
        return x.contiguous().view(torch.uint8)
    if x.is_floating_point() or x.is_complex():
        return x.contiguous().view(_BITS_AS_INT[x.element_size()])
    return x.contiguous()


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise ULP distance as float64 (NaN where exactly one side is NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(
            f"ulp_distance needs equal dtypes and shapes, got {a.dtype}{tuple(a.shape)} "
            f"and {b.dtype}{tuple(b.shape)}"
        )
    if not a.is_floating_point():
        return (a.to(torch.float64) - b.to(torch.float64)).abs()
    ord_a, ord_b = ordered_bits(a), ordered_bits(b)
    if a.element_size() < 8:
        # int64 subtraction is exact for widths up to 32 bits; do it there and convert once.
        steps = (ord_a - ord_b).abs().to(torch.float64)
    else:  # 64-bit: the difference can overflow int64, so subtract in float64 (rounded above 2**53)
        steps = (ord_a.to(torch.float64) - ord_b.to(torch.float64)).abs()
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    steps = torch.where(nan_a & nan_b, torch.zeros_like(steps), steps)
    return torch.where(nan_a ^ nan_b, torch.full_like(steps, float("nan")), steps)


def bitwise_diff(reference: torch.Tensor, got: torch.Tensor) -> TensorDiff:
    """Compare ``got`` with ``reference`` (same dtype and shape, any device; computed on the host).

    Example:
        >>> bitwise_diff(torch.tensor([1.0]), torch.tensor([1.0]).nextafter(torch.tensor([2.0]))).max_ulp
        1
    """
    a = reference.detach().to("cpu")
    b = got.detach().to("cpu")
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(
            f"bitwise_diff needs equal dtypes and shapes, got {a.dtype}{tuple(a.shape)} "
            f"and {b.dtype}{tuple(b.shape)}"
        )
    elements = a.numel()
    if elements == 0:
        return TensorDiff(True, 0, 0.0, 0, 0, 0)
    differs = bit_patterns(a) != bit_patterns(b)
    differing = int(differs.sum())
    if differing == 0:
        return TensorDiff(True, 0, 0.0, 0, 0, elements)
    steps = ulp_distance(a, b)
    comparable = ~torch.isnan(steps)
    max_ulp = int(steps[comparable].max()) if bool(comparable.any()) else 0
    if a.is_floating_point():
        a64, b64 = a.to(torch.float64), b.to(torch.float64)
        finite = torch.isfinite(a64) & torch.isfinite(b64)
        both_nan = torch.isnan(a64) & torch.isnan(b64)
        nonfinite = int((~finite & ~both_nan & (a64 != b64)).sum())
        abs_diff = (a64 - b64).abs()[finite]
        max_abs = float(abs_diff.max()) if abs_diff.numel() else 0.0
    else:
        nonfinite = 0
        max_abs = float(steps.max())
    return TensorDiff(False, max_ulp, max_abs, nonfinite, differing, elements)
