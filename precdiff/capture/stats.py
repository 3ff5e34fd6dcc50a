"""Summary statistics of a tensor, computed on its own device.

Returned as one small float64 tensor (see :data:`STAT_ORDER`) that stays on the device until a batch
of them is copied to the host at once: one synchronisation per batch instead of per tensor.

Conventions: min / max / mean / std / l2 are over the *finite* elements (NaN and ±Inf are counted
separately); a tensor with no finite element has NaN for those five; std is the population std.
"""

from __future__ import annotations

from typing import Callable

import torch

from precdiff.store.format import STAT_NAMES

STAT_ORDER = STAT_NAMES  # min, max, mean, std, l2, nan_count, inf_count


_cuda_kernel: Callable[[torch.Tensor], torch.Tensor] | None = None


def _one_pass_cuda(tensor: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The Triton one-pass kernel for CUDA float tensors, or None (no CUDA, no Triton, other dtype)."""
    global _cuda_kernel
    if not tensor.is_cuda or tensor.numel() == 0 or tensor.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return None
    if _cuda_kernel is None:
        try:
            from precdiff.capture.stats_triton import tensor_stats_cuda
        except ImportError:  # CUDA without Triton: the torch path below is correct, only slower
            return None
        _cuda_kernel = tensor_stats_cuda
    return _cuda_kernel


def tensor_stats(tensor: torch.Tensor) -> torch.Tensor:
    """Seven statistics of ``tensor`` as a float64 tensor of shape [7] on ``tensor.device``."""
    kernel = _one_pass_cuda(tensor)
    if kernel is not None:
        return kernel(tensor)
    return tensor_stats_torch(tensor)


def tensor_stats_torch(tensor: torch.Tensor) -> torch.Tensor:
    """Reference implementation with torch ops (any device, any dtype).

    Tensors without NaN/Inf (the usual case, decided with one host check) take a short path of
    three reductions that upcast inside the kernel; others take the masked path.
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
        n = float(x.numel())
        total = x.sum(dtype=torch.float64)
        l2 = torch.linalg.vector_norm(x, dtype=torch.float64)
        mean = total / n
        std = torch.sqrt(torch.clamp(l2 * l2 / n - mean * mean, min=0.0))
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
