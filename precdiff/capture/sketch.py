"""A fixed-seed linear sketch and an exact checksum of a tensor, for summary captures that still localize.

``--summary`` keeps a few numbers per tensor instead of the tensor. Norms alone bound rel-L2 from
below; the sketch lets ``compare`` *estimate* ‖B − A‖₂ (and so rel-L2 and cosine) between two summary
captures, because it is linear: ``S(B) − S(A) = S(B − A)``.

The sketch is a CountSketch of width :data:`WIDTH`: element ``i`` of the flattened tensor is added, with
sign ``σ(i) = ±1``, into bucket ``h(i)``; ``σ`` and ``h`` come from one 64-bit mix of ``i`` and
:data:`SEED`, so every machine and every run computes the same function. Accumulation is float64 (the
elements of a bf16/fp16/fp32 tensor are exact in float64), so differences as small as fp32 rounding
(rel-L2 ~1e-7) survive the subtraction ``S(B) − S(A)``. Estimator properties (the compare side,
:mod:`precdiff.compare.sketch_estimate`): ``‖S(d)‖²`` is an unbiased estimate of ``‖d‖²`` with variance
at most ``2‖d‖⁴ / WIDTH``, i.e. a relative standard deviation of rel-L2 of about ``1/sqrt(2·WIDTH)``
(4.4 % at 256) whatever the tensor's size, shape or outlier structure (hash buckets, not positions, so
an error confined to one channel is spread over all buckets).

The checksum is ``Σ bits(xᵢ)·(2·mix(i)+1) mod 2⁶⁴`` over the raw bit patterns: integer addition is
associative, so it is exact and order independent on any device, and two tensors with equal checksums
are (up to a 2⁻⁶⁴ collision) bitwise equal — the case a sketch difference of 0.0 cannot prove.
"""

from __future__ import annotations

import torch

WIDTH = 256
SEED = 0x9E3779B97F4A7C15  # any fixed odd 64-bit value; changing it changes every stored sketch
CHUNK = 1 << 22  # elements per step: bounded temporary memory whatever the tensor size
_MASK63 = (1 << 63) - 1


def _mix(index: torch.Tensor) -> torch.Tensor:
    """A 64-bit integer mix (splitmix64's finaliser) of int64 ``index``; wrap-around arithmetic."""
    z = index * _signed(SEED)
    z = z ^ ((z >> 30) & ((1 << 34) - 1))  # logical shift right emulated on int64
    z = z * _signed(0xBF58476D1CE4E5B9)
    z = z ^ ((z >> 27) & ((1 << 37) - 1))
    z = z * _signed(0x94D049BB133111EB)
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _bits(chunk: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of a float chunk as int64 (bf16/fp16 -> 16 bits, fp32 -> 32, fp64 -> 64)."""
    size = chunk.element_size()
    view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[size]
    return chunk.contiguous().view(view).to(torch.int64)


def sketch_and_checksum(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float64 sketch ``[WIDTH]``, int64 checksum ``[]``), both on the tensor's device (no sync).

    Non-float tensors are sketched as float64 values; NaN/Inf elements are left out of the sketch
    (compare handles non-finite tensors from their counts) but enter the checksum.
    """
    flat = tensor.detach().reshape(-1)
    device = flat.device
    sketch = torch.zeros(WIDTH, dtype=torch.float64, device=device)
    checksum = torch.zeros((), dtype=torch.int64, device=device)
    is_float = flat.is_floating_point()
    for start in range(0, flat.numel(), CHUNK):
        chunk = flat[start : start + CHUNK]
        mixed = _mix(torch.arange(start, start + chunk.numel(), device=device, dtype=torch.int64))
        bits = _bits(chunk) if is_float else chunk.to(torch.int64)
        checksum += (bits * (mixed * 2 + 1)).sum()  # int64 sums wrap: exact modulo 2**64
        values = chunk.to(torch.float64)
        values = torch.where(torch.isfinite(values), values, 0.0)
        signs = 1.0 - 2.0 * ((mixed >> 40) & 1).to(torch.float64)
        buckets = (mixed & _MASK63) % WIDTH
        sketch.index_add_(0, buckets, values * signs)
    return sketch, checksum
