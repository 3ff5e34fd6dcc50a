"""One-pass summary statistics on CUDA with Triton (imported only when a CUDA tensor needs it).

The kernel reads a tensor once. Each program reduces ``BLOCK * ITERS`` elements to one row of
:data:`~precdiff.capture.stats.PARTIAL_FIELDS` partials; the rows stay on the device until a batch of
them is copied to the host, where :func:`precdiff.capture.stats.combine_partials` combines them in
float64. Sums are of ``x − K`` with ``K`` the tensor's first element (0 if not finite): shifting by a
value near the data keeps the float32 sum of squares from cancelling when |mean| ≫ std.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from precdiff.capture.stats import PARTIAL_FIELDS

BLOCK = 1024
ITERS = 32
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# No type annotations on the kernel: Triton resolves annotation names as kernel globals.
@triton.jit  # type: ignore[untyped-decorator]
def _partials_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr, ITERS: tl.constexpr):  # type: ignore[no-untyped-def]
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
    row = out_ptr + pid * 8
    tl.store(row + 0, tl.min(vmin, axis=0))
    tl.store(row + 1, tl.max(vmax, axis=0))
    tl.store(row + 2, tl.sum(finite_count, axis=0).to(tl.float32))
    tl.store(row + 3, tl.sum(total, axis=0))
    tl.store(row + 4, tl.sum(squares, axis=0))
    tl.store(row + 5, tl.sum(nan_count, axis=0).to(tl.float32))
    tl.store(row + 6, tl.sum(inf_count, axis=0).to(tl.float32))
    tl.store(row + 7, shift)


def partials_cuda(tensor: torch.Tensor) -> torch.Tensor:
    """Launch the kernel; returns the float32 partials [programs, 8] on the tensor's device."""
    x = tensor.detach().contiguous().view(-1)
    n = x.numel()
    programs = triton.cdiv(n, BLOCK * ITERS)
    partials = torch.empty((programs, len(PARTIAL_FIELDS)), dtype=torch.float32, device=x.device)
    _partials_kernel[(programs,)](x, partials, n, BLOCK=BLOCK, ITERS=ITERS)
    return partials
