"""One-pass summary statistics on CUDA with Triton (imported only when a CUDA tensor needs it).

The torch version in :mod:`precdiff.capture.stats` reads a tensor about eight times (casts, masks,
two-pass variance); this kernel reads it once. Each program reduces ``BLOCK * ITERS`` elements to
seven partials (finite min, finite max, finite count, sum, sum of squares, NaN count, Inf count);
the partials are combined in float64 by a few small torch ops on the device. Sums inside a program
are float32 over at most 32 Ki elements, which keeps their relative error near 1e-7: enough for
display statistics (metrics are recomputed in float64 by ``compare``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024
ITERS = 32
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# No type annotations on the kernel: Triton resolves annotation names as kernel globals.
@triton.jit  # type: ignore[untyped-decorator]
def _partials_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr, ITERS: tl.constexpr):  # type: ignore[no-untyped-def]
    pid = tl.program_id(0).to(tl.int64)
    base = pid * BLOCK * ITERS
    lane = tl.arange(0, BLOCK)
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
        kept = tl.where(finite, x, 0.0)
        total += kept
        squares += kept * kept
        vmin = tl.minimum(vmin, tl.where(finite, x, float("inf")))
        vmax = tl.maximum(vmax, tl.where(finite, x, float("-inf")))
        finite_count += finite.to(tl.int32)
        nan_count += (inside & is_nan).to(tl.int32)
        inf_count += (inside & is_inf).to(tl.int32)
    row = out_ptr + pid * 7
    tl.store(row + 0, tl.min(vmin, axis=0))
    tl.store(row + 1, tl.max(vmax, axis=0))
    tl.store(row + 2, tl.sum(finite_count, axis=0).to(tl.float32))
    tl.store(row + 3, tl.sum(total, axis=0))
    tl.store(row + 4, tl.sum(squares, axis=0))
    tl.store(row + 5, tl.sum(nan_count, axis=0).to(tl.float32))
    tl.store(row + 6, tl.sum(inf_count, axis=0).to(tl.float32))


def supports(tensor: torch.Tensor) -> bool:
    """Whether the one-pass kernel handles this tensor."""
    return tensor.is_cuda and tensor.dtype in FLOAT_DTYPES and tensor.numel() > 0


def tensor_stats_cuda(tensor: torch.Tensor) -> torch.Tensor:
    """Same result layout as :func:`precdiff.capture.stats.tensor_stats`, in one pass over the data."""
    x = tensor.detach().contiguous().view(-1)
    n = x.numel()
    programs = triton.cdiv(n, BLOCK * ITERS)
    partials = torch.empty((programs, 7), dtype=torch.float32, device=x.device)
    _partials_kernel[(programs,)](x, partials, n, BLOCK=BLOCK, ITERS=ITERS)
    p = partials.to(torch.float64)
    count = p[:, 2].sum()
    total = p[:, 3].sum()
    squares = p[:, 4].sum()
    mean = total / count
    std = torch.sqrt(torch.clamp(squares / count - mean * mean, min=0.0))
    none_finite = count == 0
    nan = torch.full((), float("nan"), dtype=torch.float64, device=x.device)
    minimum = torch.where(none_finite, nan, p[:, 0].min())
    maximum = torch.where(none_finite, nan, p[:, 1].max())
    l2 = torch.where(none_finite, nan, torch.sqrt(squares))
    return torch.stack([minimum, maximum, mean, std, l2, p[:, 5].sum(), p[:, 6].sum()])
