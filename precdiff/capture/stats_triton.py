"""One-pass summary statistics on CUDA with Triton (imported only when a CUDA tensor needs it).

The kernel reads a tensor once. Each program reduces ``BLOCK * ITERS`` elements to one row of
:data:`~precdiff.capture.stats_partials.PARTIAL_FIELDS` partials; the rows stay on the device until a
batch of them is copied to the host, where :func:`~precdiff.capture.stats_partials.combine_partials` combines them in
float64. Sums are of ``x − K`` with ``K`` the tensor's first element (0 if not finite): shifting by a
value near the data keeps the float32 sum of squares from cancelling when |mean| ≫ std.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from precdiff.capture.stats_partials import COLUMN, PARTIAL_FIELDS

BLOCK = 1024
ITERS = 32


# No type annotations on the kernel: Triton resolves annotation names as kernel globals.
@triton.jit  # type: ignore[untyped-decorator]
def _partials_kernel(  # type: ignore[no-untyped-def]
    x_ptr,
    out_ptr,
    n,
    WIDTH: tl.constexpr,
    BLOCK: tl.constexpr,
    ITERS: tl.constexpr,
    C_MIN: tl.constexpr,
    C_MAX: tl.constexpr,
    C_COUNT: tl.constexpr,
    C_SUM: tl.constexpr,
    C_SUMSQ: tl.constexpr,
    C_NAN: tl.constexpr,
    C_INF: tl.constexpr,
    C_SHIFT: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    base = pid * BLOCK * ITERS
    lane = tl.arange(0, BLOCK)
    shift = tl.load(x_ptr).to(tl.float32)
    shift = tl.where(tl.abs(shift) < float("inf"), shift, 0.0)  # NaN and ±Inf fail the comparison
    vmin = tl.full([BLOCK], float("inf"), tl.float32)
    vmax = tl.full([BLOCK], float("-inf"), tl.float32)
    total = tl.zeros([BLOCK], tl.float32)
    squares = tl.zeros([BLOCK], tl.float32)
    finite_count = tl.zeros([BLOCK], tl.int32)
    nan_count = tl.zeros([BLOCK], tl.int32)
    inf_count = tl.zeros([BLOCK], tl.int32)
    for i in range(ITERS):
        offsets = base + i * BLOCK + lane
        inside = offsets < n
        x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(tl.float32)
        is_nan = x != x
        is_inf = tl.abs(x) == float("inf")
        finite = inside & ~is_nan & ~is_inf
        centred = tl.where(finite, x - shift, 0.0)
        total += centred
        squares += centred * centred
        vmin = tl.minimum(vmin, tl.where(finite, x, float("inf")))
        vmax = tl.maximum(vmax, tl.where(finite, x, float("-inf")))
        finite_count += finite.to(tl.int32)
        nan_count += (inside & is_nan).to(tl.int32)
        inf_count += (inside & is_inf).to(tl.int32)
    row = out_ptr + pid * WIDTH
    tl.store(row + C_MIN, tl.min(vmin, axis=0))
    tl.store(row + C_MAX, tl.max(vmax, axis=0))
    tl.store(row + C_COUNT, tl.sum(finite_count, axis=0).to(tl.float32))
    tl.store(row + C_SUM, tl.sum(total, axis=0))
    tl.store(row + C_SUMSQ, tl.sum(squares, axis=0))
    tl.store(row + C_NAN, tl.sum(nan_count, axis=0).to(tl.float32))
    tl.store(row + C_INF, tl.sum(inf_count, axis=0).to(tl.float32))
    tl.store(row + C_SHIFT, shift)


def partials_cuda(tensor: torch.Tensor) -> torch.Tensor:
    """Launch the kernel; returns the float32 partials [programs, 8] on the tensor's device."""
    x = tensor.detach().contiguous().view(-1)
    n = x.numel()
    programs = triton.cdiv(n, BLOCK * ITERS)
    partials = torch.empty((programs, len(PARTIAL_FIELDS)), dtype=torch.float32, device=x.device)
    _partials_kernel[(programs,)](
        x,
        partials,
        n,
        WIDTH=len(PARTIAL_FIELDS),
        BLOCK=BLOCK,
        ITERS=ITERS,
        C_MIN=COLUMN["min"],
        C_MAX=COLUMN["max"],
        C_COUNT=COLUMN["finite_count"],
        C_SUM=COLUMN["shifted_sum"],
        C_SUMSQ=COLUMN["shifted_sumsq"],
        C_NAN=COLUMN["nan_count"],
        C_INF=COLUMN["inf_count"],
        C_SHIFT=COLUMN["shift"],
    )
    return partials
