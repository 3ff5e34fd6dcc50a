"""Summary statistics of a tensor, computed on its own device.

Returned as one small float64 tensor (see :data:`STAT_ORDER`) that stays on the device until a batch
of them is copied to the host at once: one synchronisation per batch instead of per tensor.

Conventions: min / max / mean / std / l2 are over the *finite* elements (NaN and ±Inf are counted
separately); a tensor with no finite element has NaN for those five; std is the population std.
"""

from __future__ import annotations

import torch

from precdiff.store.format import STAT_NAMES

STAT_ORDER = STAT_NAMES  # min, max, mean, std, l2, nan_count, inf_count


def tensor_stats(tensor: torch.Tensor) -> torch.Tensor:
    """Seven statistics of ``tensor`` as a float64 tensor of shape [7] on ``tensor.device``."""
    x = tensor.detach()
    if x.dtype == torch.bool or not x.is_floating_point():
        x = x.to(torch.float64)
    if x.numel() == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=x.device)
        zero = torch.zeros((), dtype=torch.float64, device=x.device)
        return torch.stack([nan, nan, nan, nan, nan, zero, zero])
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
