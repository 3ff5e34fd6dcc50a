"""Summaries of captured tensors, computed on their own device: statistics, sketch and checksum.

A :class:`SummaryBatch` queues tensors without waiting for the device and copies a whole batch to
the host at once (:meth:`SummaryBatch.resolve`): one synchronisation per batch instead of per tensor.
CUDA float tensors take the one-pass Triton kernel (capture/summary_triton.py); other tensors the
torch reference implementation below, which never synchronises on an accelerator either.

Conventions: min / max / mean / std / l2 are over the *finite* elements (NaN and ±Inf are counted
separately); a tensor with no finite element has NaN for those five; std is the population std.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from precdiff.capture.sketch import sketch_and_checksum
from precdiff.capture.stats_partials import finish_partials
from precdiff.store.format import STAT_NAMES

if TYPE_CHECKING:
    from precdiff.capture.summary_triton import FusedSummaries

STAT_ORDER = STAT_NAMES  # min, max, mean, std, l2, nan_count, inf_count
_CHUNK = 1 << 22  # elements per float64 chunk in the torch path (32 MiB)


class Summary(NamedTuple):
    """One tensor's summary on the host."""

    stats: list[float]  # STAT_ORDER
    sketch: np.ndarray | None  # float64 [sketch.WIDTH]; None when sketches were not asked for
    checksum: int | None  # the exact checksum, 0 <= checksum < 2**64


def _fused_available(tensor: torch.Tensor) -> bool:
    if not tensor.is_cuda or tensor.numel() == 0:
        return False
    try:
        from precdiff.capture.summary_triton import SUPPORTED
    except ImportError:  # CUDA without Triton: the torch path is correct, only slower
        return False
    return tensor.dtype in SUPPORTED


class _TorchQueued(NamedTuple):
    stats: torch.Tensor  # float64 [7] on the tensor's device
    sketch: tuple[torch.Tensor, torch.Tensor] | None  # (sketch, checksum) on the tensor's device


class SummaryBatch:
    """Summaries queued on the tensors' devices until :meth:`resolve` copies them to the host.

    Args:
        sketches: also compute the sketch and checksum.
        slots: tensors per device arena of the CUDA kernel before a device-side reduction.
    """

    def __init__(self, *, sketches: bool = True, slots: int | None = None):
        self.sketches = sketches
        self._slots = slots
        self._fused: dict[torch.device, FusedSummaries] = {}
        self._queued: list[tuple[FusedSummaries, int] | _TorchQueued] = []

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, tensor: torch.Tensor) -> None:
        """Queue one tensor (no synchronisation)."""
        if _fused_available(tensor):
            arena = self._fused.get(tensor.device)
            if arena is None:
                from precdiff.capture.summary_triton import SLOTS, FusedSummaries

                arena = self._fused[tensor.device] = FusedSummaries(
                    tensor.device, self._slots or SLOTS, sketches=self.sketches
                )
            self._queued.append((arena, arena.add(tensor)))
            return
        sketch = sketch_and_checksum(tensor) if self.sketches else None
        self._queued.append(_TorchQueued(tensor_stats_torch(tensor), sketch))

    def resolve(self) -> list[Summary]:
        """Copy everything queued to the host (one transfer per device and kind) and start afresh."""
        fused = {}
        for arena in self._fused.values():
            sketch_rows, partials, checksums = arena.collect()
            fused[id(arena)] = (sketch_rows, finish_partials(partials), checksums)
        torch_items = [q for q in self._queued if isinstance(q, _TorchQueued)]
        torch_stats = iter(_host([q.stats for q in torch_items]))
        sketched = [q.sketch for q in torch_items if q.sketch is not None]
        torch_sketches = iter(_host([sketch for sketch, _ in sketched]))
        torch_checksums = iter(_host([checksum for _, checksum in sketched]))
        out: list[Summary] = []
        for queued in self._queued:
            if isinstance(queued, _TorchQueued):
                row = [float(v) for v in next(torch_stats)]
                if queued.sketch is None:
                    out.append(Summary(row, None, None))
                else:  # int64 bits of the wrapped sum -> the unsigned checksum
                    out.append(Summary(row, next(torch_sketches), int(next(torch_checksums)) % (1 << 64)))
                continue
            arena, position = queued
            sketch_rows, stats, checksums = fused[id(arena)]
            row = [float(v) for v in stats[position]]
            if self.sketches:
                out.append(Summary(row, sketch_rows[position], int(checksums[position])))
            else:
                out.append(Summary(row, None, None))
        self._queued.clear()
        return out


def _host(tensors: list[torch.Tensor]) -> np.ndarray:
    """Stack same-shaped device tensors and copy them to the host in one transfer."""
    if not tensors:
        return np.zeros(0)
    return torch.stack(tensors).cpu().numpy()


def tensor_stats(tensor: torch.Tensor) -> list[float]:
    """The seven statistics of one tensor, on the host (one synchronisation)."""
    batch = SummaryBatch(sketches=False, slots=1)
    batch.add(tensor)
    return batch.resolve()[0].stats


def tensor_stats_torch(tensor: torch.Tensor) -> torch.Tensor:
    """Reference implementation with torch ops (any device, any dtype), as a float64 tensor [7].

    Integer and bool tensors, and CPU tensors without NaN/Inf (decided with one check, free on the
    CPU), take a short path of chunked float64 sums shifted by the first element; other tensors the
    masked path, so an accelerator tensor never waits for a host decision.
    """
    x = tensor.detach()
    always_finite = x.dtype == torch.bool or not x.is_floating_point()
    if always_finite:
        x = x.to(torch.float64)
    if x.numel() == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=x.device)
        zero = torch.zeros((), dtype=torch.float64, device=x.device)
        return torch.stack([nan, nan, nan, nan, nan, zero, zero])
    minimum, maximum = torch.aminmax(x)
    # NaN propagates into aminmax, so finite extremes mean a finite tensor.
    if always_finite or (x.device.type == "cpu" and bool(torch.isfinite(minimum) & torch.isfinite(maximum))):
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
