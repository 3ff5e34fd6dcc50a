"""The sketch and checksum of capture/sketch.py in one pass over a CUDA tensor (Triton).

Same function bit for bit in the checksum and to float64 rounding in the sketch (the accumulation order
differs): each program reads ``ROWS`` rows of ``width`` elements, each row rotated by its offset,
accumulates ``a_r·x`` in float64 registers and the checksum terms in uint64, and writes one partial
row; the host-side sum of the partials is deterministic. Imported only when a CUDA tensor needs it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ROWS = 64  # rows per program: 16 Ki elements, enough work to hide the per-row hash


# No type annotations on the kernel: Triton resolves annotation names as kernel globals.
@triton.jit
def _mix(z):  # type: ignore[no-untyped-def]
    z = z ^ (z >> 30)
    z = z * 0xBF58476D1CE4E5B9
    z = z ^ (z >> 27)
    z = z * 0x94D049BB133111EB
    return z ^ (z >> 31)


# fmt: off
@triton.jit  # type: ignore[untyped-decorator]
def _sketch_kernel(  # type: ignore[no-untyped-def]
    x_ptr, sketch_ptr, checksum_ptr, n, rows, seed,
    W: tl.constexpr, ROWS: tl.constexpr, SIGN_BIT: tl.constexpr, BITS: tl.constexpr,
):
    # fmt: on
    pid = tl.program_id(0).to(tl.int64)
    columns = tl.arange(0, W).to(tl.int64)
    acc = tl.zeros([W], tl.float64)
    check = tl.zeros([W], tl.uint64)
    for i in range(ROWS):
        row = pid * ROWS + i
        mixed = _mix((row + seed).to(tl.uint64, bitcast=True))
        offset = (mixed & (W - 1)).to(tl.int64)
        sign = 1.0 - 2.0 * ((mixed >> SIGN_BIT) & 1).to(tl.float64)
        source = (columns - offset + W) % W  # bucket k reads element (k - o_r) mod W of row r
        index = row * W + source
        inside = (index < n) & (row < rows)
        x = tl.load(x_ptr + index, mask=inside, other=0)
        value = x.to(tl.float64)
        finite = tl.abs(value) < float("inf")  # NaN and ±Inf fail the comparison
        acc += tl.where(finite & inside, value, 0.0) * sign
        if BITS == 16:
            bits = x.to(tl.int16, bitcast=True).to(tl.int64)  # sign-extended, as capture/sketch.py does
        elif BITS == 32:
            bits = x.to(tl.int32, bitcast=True).to(tl.int64)
        else:
            bits = x.to(tl.int64, bitcast=True)
        weight = (mixed * 2 + 1) * (source * 2 + 1).to(tl.uint64)
        term = bits.to(tl.uint64, bitcast=True) * weight
        check += tl.where(inside, term, tl.zeros([W], tl.uint64))
    tl.store(sketch_ptr + pid * W + columns, acc)
    tl.store(checksum_ptr + pid, tl.sum(check, axis=0).to(tl.int64, bitcast=True))


def sketch_and_checksum_cuda(
    tensor: torch.Tensor, width: int, row_seed: int, sign_bit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Partials on the device for a float tensor: ``([programs, width] float64, [programs] int64)``;
    their sums (float64, and int64 wrapping) are the sketch and the checksum. The constants come from
    capture/sketch.py, which owns the definition."""
    x = tensor.detach().contiguous().view(-1)
    n = x.numel()
    rows = triton.cdiv(n, width)
    programs = max(1, triton.cdiv(rows, ROWS))
    sketch = torch.empty((programs, width), dtype=torch.float64, device=x.device)
    checksum = torch.empty((programs,), dtype=torch.int64, device=x.device)
    seed = row_seed - (1 << 64) if row_seed >= 1 << 63 else row_seed
    _sketch_kernel[(programs,)](
        x,
        sketch,
        checksum,
        n,
        rows,
        seed,
        W=width,
        ROWS=ROWS,
        SIGN_BIT=sign_bit,
        BITS=x.element_size() * 8,
    )
    return sketch, checksum
