"""A fixed-seed linear sketch and an exact checksum of a tensor, for summary captures that still localize.

``--summary`` keeps a few numbers per tensor instead of the tensor. Norms alone bound rel-L2 from
below; the sketch lets ``compare`` *estimate* ‖B − A‖₂ (and so rel-L2 and cosine) between two summary
captures, because it is linear: ``S(B) − S(A) = S(B − A)``.

The sketch is a CountSketch of width :data:`WIDTH` laid out for one streaming pass: the flattened
tensor is read as rows of ``WIDTH`` elements (the last one zero-padded); element ``j`` of row ``r`` is
added with sign ``a_r`` into bucket ``(j + o_r) mod WIDTH``. The row sign ``a_r`` and offset ``o_r``
come from a 64-bit mix of ``r`` with a fixed seed, so every machine and every run computes the same
function, and a kernel needs one hash per row, not per element. Two elements of one row never share a
bucket; two of different rows share one with probability ``1/WIDTH`` and then carry independent signs
``a_r1·a_r2``, so
``‖S(d)‖²`` is an unbiased estimate of ``‖d‖²`` with variance at most about ``2‖d‖⁴ / WIDTH``: a
relative standard deviation of the rel-L2 estimate of about ``1/sqrt(2·WIDTH)`` (4.4 % at 256), for
any size and shape — the random offsets spread an error confined to one channel over all buckets.
Accumulation is float64 (bf16/fp16/fp32 elements are exact in float64), so differences as small as
fp32 rounding (rel-L2 ~1e-7) survive the subtraction ``S(B) − S(A)``.

The checksum is ``Σ bits(x[r, j])·(2·mix(r)+1)·(2j+1) mod 2⁶⁴`` over the raw bit patterns (odd
weights): integer addition is associative, so it is exact and order independent on any device,
and equal checksums mean (up to a 2⁻⁶⁴ collision) bitwise-equal tensors — the case a sketch
difference of 0.0 cannot prove.
"""

from __future__ import annotations

import torch

WIDTH = 256  # a power of two: offsets are the low bits of the row hash
ROW_SEED = 0x9E3779B97F4A7C15  # fixed: changing it changes every stored sketch
SIGN_BIT = 40  # bit of mix(r) giving a_r; the low log2(WIDTH) bits give o_r
ROWS_PER_STEP = 1 << 14  # rows of WIDTH elements per step: bounded temporary memory


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def mix(index: torch.Tensor, seed: int) -> torch.Tensor:
    """splitmix64 of ``index + seed`` on int64 with wrap-around (logical shifts emulated by masks)."""
    z = index + _signed(seed)
    z = z ^ ((z >> 30) & ((1 << 34) - 1))
    z = z * _signed(0xBF58476D1CE4E5B9)
    z = z ^ ((z >> 27) & ((1 << 37) - 1))
    z = z * _signed(0x94D049BB133111EB)
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def _sign(mixed: torch.Tensor) -> torch.Tensor:
    return 1.0 - 2.0 * ((mixed >> SIGN_BIT) & 1).to(torch.float64)


def _bits(values: torch.Tensor) -> torch.Tensor:
    """Raw bit patterns as int64 (16-bit floats -> 16 bits, fp32 -> 32, fp64 -> 64); integers as they are."""
    if not values.is_floating_point():
        return values.to(torch.int64)
    view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[values.element_size()]
    return values.contiguous().view(view).to(torch.int64)


def sketch_and_checksum(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float64 sketch ``[WIDTH]``, int64 checksum ``[]``), both on the tensor's device (no sync): the
    definition, in torch ops on any device; capture/summary_triton.py computes the same in one CUDA pass.

    NaN/Inf elements are left out of the sketch (compare handles non-finite tensors from their
    counts) but enter the checksum.
    """
    flat = tensor.detach().reshape(-1)
    device = flat.device
    columns = torch.arange(WIDTH, device=device, dtype=torch.int64)
    column_weight = columns * 2 + 1
    by_offset = torch.zeros((WIDTH, WIDTH), dtype=torch.float64, device=device)  # signed row sums per offset
    checksum = torch.zeros((), dtype=torch.int64, device=device)
    rows_total = -(-flat.numel() // WIDTH)
    for first in range(0, rows_total, ROWS_PER_STEP):
        last = min(first + ROWS_PER_STEP, rows_total)
        chunk = flat[first * WIDTH : last * WIDTH]
        if chunk.numel() < (last - first) * WIDTH:  # the zero-padded last row
            chunk = torch.cat([chunk, chunk.new_zeros((last - first) * WIDTH - chunk.numel())])
        block = chunk.view(last - first, WIDTH)
        row_mix = mix(torch.arange(first, last, device=device, dtype=torch.int64), ROW_SEED)
        if block.is_floating_point() and block.element_size() <= 4:
            # |bits| < 2**31, weights < 2**9, WIDTH terms: each row sum is an integer below 2**53, so a
            # float64 matrix-vector product gives it exactly, at twice the speed of int64 arithmetic.
            raw = block.contiguous().view(torch.int16 if block.element_size() == 2 else torch.int32)
            row_sums = (raw.to(torch.float64) @ column_weight.to(torch.float64)).to(torch.int64)
        else:
            row_sums = (_bits(block) * column_weight).sum(dim=1)
        checksum += (row_sums * (row_mix * 2 + 1)).sum()  # wraps mod 2**64
        values = torch.nan_to_num(block.to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
        # Rows with the same offset share one rotation: add them up signed per offset (one pass), and
        # rotate the WIDTH sums once at the end instead of every row.
        by_offset.index_add_(0, row_mix & (WIDTH - 1), values * _sign(row_mix)[:, None])
    # Row r's element j goes to bucket (j + o_r) mod WIDTH: bucket k takes element (k - o) mod WIDTH of
    # the sum of the rows of offset o.
    source = (columns[None, :] - columns[:, None]) % WIDTH  # [offset, bucket]
    return by_offset.gather(1, source).sum(dim=0), checksum
