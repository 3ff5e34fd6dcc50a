"""Summary statistics of a tensor, computed on its own device.

Returned as one small float64 tensor (see :data:`STAT_ORDER`) that stays on the device until a batch
of them is copied to the host at once: one synchronisation per batch instead of per tensor.

Conventions: min / max / mean / std / l2 are over the *finite* elements (NaN and ±Inf are counted
separately); a tensor with no finite element has NaN for those five; std is the population std.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from precdiff.capture.stats_partials import combine_partials
from precdiff.store.format import STAT_NAMES

STAT_ORDER = STAT_NAMES  # min, max, mean, std, l2, nan_count, inf_count
_CHUNK = 1 << 22  # elements per float64 chunk in the torch path (32 MiB)


_partials_kernel: Callable[[torch.Tensor], torch.Tensor] | None = None


def _one_pass_cuda(tensor: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The Triton one-pass kernel for CUDA float tensors, or None (no CUDA, no Triton, other dtype)."""
    global _partials_kernel
    if (
        not tensor.is_cuda
        or tensor.numel() == 0
        or tensor.dtype not in (torch.float32, torch.float16, torch.bfloat16)
    ):
        return None
    if _partials_kernel is None:
        try:
            from precdiff.capture.stats_triton import partials_cuda
        except ImportError:  # CUDA without Triton: the torch path is correct, only slower
            return None
        _partials_kernel = partials_cuda
    return _partials_kernel


class PendingStats:
    """Statistics of one tensor still on its device: final values, or kernel partials to combine."""

    __slots__ = ("is_partial", "values")

    def __init__(self, tensor: torch.Tensor):
        kernel = _one_pass_cuda(tensor)
        self.is_partial = kernel is not None
        self.values = kernel(tensor) if kernel is not None else tensor_stats_torch(tensor)


def resolve(pending: list[PendingStats]) -> list[list[float]]:
    """Copy a batch of pending statistics to the host (two transfers at most) and finish them."""
    results: list[list[float] | None] = [None] * len(pending)
    finals = [i for i, p in enumerate(pending) if not p.is_partial]
    partials = [i for i, p in enumerate(pending) if p.is_partial]
    if finals:
        rows = torch.stack([pending[i].values for i in finals]).cpu().tolist()
        for i, row in zip(finals, rows):
            results[i] = row
    if partials:
        blocks = [pending[i].values for i in partials]
        host = torch.cat(blocks).cpu().numpy()
        start = 0
        for i, block in zip(partials, blocks):
            results[i] = combine_partials(host[start : start + block.shape[0]])
            start += block.shape[0]
    return [r for r in results if r is not None]


def tensor_stats(tensor: torch.Tensor) -> list[float]:
    """The seven statistics of one tensor, on the host (one synchronisation)."""
    return resolve([PendingStats(tensor)])[0]


def tensor_stats_torch(tensor: torch.Tensor) -> torch.Tensor:
    """Reference implementation with torch ops (any device, any dtype).

    Tensors without NaN/Inf (the usual case, decided with one host check) take a short path of
    chunked float64 sums shifted by the first element; others take the masked path.
    """
    x = tensor.detach()
    if x.dtype == torch.bool or not x.is_floating_point():
        x = x.to(torch.float64)
    if x.numel() == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=x.device)
        zero = torch.zeros((), dtype=torch.float64, device=x.device)
        return torch.stack([nan, nan, nan, nan, nan, zero, zero])
    minimum, maximum = torch.aminmax(x)
    if bool(torch.isfinite(minimum) & torch.isfinite(maximum)):  # NaN propagates into aminmax
        flat = x.reshape(-1)
        shift = flat[0].to(torch.float64)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        squares = torch.zeros((), dtype=torch.float64, device=x.device)
        # Float64 sums of x − x[0] in bounded chunks: no full-size float64 copy, and no cancellation
        # in the variance when |mean| ≫ std.
        for chunk in flat.split(_CHUNK):
            centred = chunk.to(torch.float64) - shift
            total += centred.sum()
            squares += torch.dot(centred, centred)
        n = float(flat.numel())
        mean = shift + total / n
        std = torch.sqrt(torch.clamp(squares / n - (total / n) ** 2, min=0.0))
        l2 = torch.sqrt(torch.clamp(squares + 2.0 * shift * total + n * shift * shift, min=0.0))
        zero = torch.zeros((), dtype=torch.float64, device=x.device)
        return torch.stack([minimum.to(torch.float64), maximum.to(torch.float64), mean, std, l2, zero, zero])
    return _masked_stats(x)


def _masked_stats(x: torch.Tensor) -> torch.Tensor:
    """Statistics over the finite elements of a tensor that holds NaN or Inf."""
    nan_mask = torch.isnan(x)
    inf_mask = torch.isinf(x)
    nan_count = nan_mask.sum(dtype=torch.float64)
    inf_count = inf_mask.sum(dtype=torch.float64)
    finite = ~(nan_mask | inf_mask)
    n = finite.sum(dtype=torch.float64)
    # Accumulate in float64 so that the mean and the norm of a large bf16 tensor are not rounded.
    values = torch.where(finite, x, 0).to(torch.float64)
    total = values.sum()
    sumsq = (values * values).sum()
    mean = total / n
    # Two-pass variance: no cancellation when |mean| >> std.
    centred = torch.where(finite, values - mean, 0)
    std = torch.sqrt((centred * centred).sum() / n)
    minimum = torch.where(finite, x, float("inf")).min().to(torch.float64)
    maximum = torch.where(finite, x, float("-inf")).max().to(torch.float64)
    none_finite = n == 0
    nan = torch.full((), float("nan"), dtype=torch.float64, device=x.device)
    minimum = torch.where(none_finite, nan, minimum)
    maximum = torch.where(none_finite, nan, maximum)
    l2 = torch.where(none_finite, nan, torch.sqrt(sumsq))
    return torch.stack([minimum, maximum, mean, std, l2, nan_count, inf_count])


def stats_to_dict(values: list[float]) -> dict[str, float]:
    """Map a host list of the seven values to their names."""
    return dict(zip(STAT_ORDER, values))
