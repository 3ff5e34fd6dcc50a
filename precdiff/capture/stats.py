"""Summaries of captured tensors, computed on their own device: statistics, sketch and checksum.

A :class:`SummaryBatch` queues tensors without waiting for the device and copies a whole batch to
the host at once (:meth:`SummaryBatch.resolve`): one synchronisation per batch instead of per tensor.
CUDA float tensors take the one-pass Triton kernel (capture/summary_triton.py); other tensors the
torch reference implementation below, which never synchronises on an accelerator either.

Conventions: min / max / mean / std / l2 are over the *finite* elements (NaN and ±Inf are counted
separately); a tensor with no finite element has NaN for those five; std is the population std.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from precdiff.capture.host_copy import copy_to_host
from precdiff.capture.sketch import WIDTH, sketch_and_checksum
from precdiff.store.format import STAT_NAMES

if TYPE_CHECKING:
    from precdiff.capture.fused_summaries import FusedSummaries

STAT_ORDER = STAT_NAMES  # min, max, mean, std, l2, nan_count, inf_count
_CHUNK = 1 << 22  # elements per float64 chunk in the torch path (32 MiB)


class Summary(NamedTuple):
    """One tensor's summary on the host."""

    stats: list[float]  # STAT_ORDER
    sketch: np.ndarray | None  # float64 [sketch.WIDTH]; None when sketches were not asked for
    checksum: int | None  # the exact checksum, 0 <= checksum < 2**64


_fused_dtypes: tuple[torch.dtype, ...] | None = None  # the kernel's, once a CUDA tensor asked


def _fused_available(tensor: torch.Tensor) -> bool:
    global _fused_dtypes
    if not tensor.is_cuda or tensor.numel() == 0:
        return False
    if _fused_dtypes is None:  # looked up once: an import statement per tensor costs µs at op level
        try:
            from precdiff.capture import summary_triton

            _fused_dtypes = summary_triton.SUPPORTED
        except ImportError:  # CUDA without Triton: the torch path is correct, only slower
            _fused_dtypes = ()
    return tensor.dtype in _fused_dtypes


class _TorchQueued(NamedTuple):
    """A torch-path summary: [7 statistics, WIDTH sketch values, checksum bits] in one float64 row,
    on the host, or on its way there (``done``)."""

    row: torch.Tensor
    done: torch.cuda.Event | None  # None: the row is on the host already (CPU tensors)


class SummaryBatch:
    """Summaries queued on the tensors' devices, returned in :meth:`add` order by :meth:`resolve`
    (everything, one synchronisation per device) or :meth:`resolve_ready` (the oldest ones whose
    values already reached the host, without waiting: a capture writes them while the forward runs).

    Args:
        sketches: also compute the sketch and checksum.
        slots: tensors per device arena of the CUDA kernel before a device-side reduction.
        defer: CUDA tensors of one dtype (each of up to summary_triton.SHARED_BYTES) may wait to
            share a kernel launch (op level, where the host's time per tensor bounds a capture); the
            caller must then call :meth:`launch_waiting` before anything writes to a tensor it added.
    """

    def __init__(self, *, sketches: bool = True, slots: int | None = None, defer: bool = False):
        self.sketches = sketches
        self._slots = slots
        self._defer = defer
        self._fused: dict[torch.device, FusedSummaries] = {}
        # In add order: the arena of a fused summary (its results come out of the arena in order) or
        # a torch-path row.
        self._queued: deque[FusedSummaries | _TorchQueued] = deque()
        self._taken: dict[int, deque[Summary]] = {}  # per arena: results taken, not returned yet

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, tensor: torch.Tensor) -> None:
        """Queue one tensor (no synchronisation)."""
        if _fused_available(tensor):
            arena = self._fused.get(tensor.device)
            if arena is None:
                from precdiff.capture.fused_summaries import FusedSummaries
                from precdiff.capture.summary_triton import SHARED_SLOTS, SLOTS

                slots = self._slots or (SHARED_SLOTS if self._defer else SLOTS)
                arena = self._fused[tensor.device] = FusedSummaries(
                    tensor.device, slots, sketches=self.sketches, defer=self._defer
                )
                self._taken[id(arena)] = deque()
            arena.add(tensor)
            self._queued.append(arena)
            return
        parts = [tensor_stats_torch(tensor)]
        if self.sketches:
            sketch, checksum = sketch_and_checksum(tensor)
            parts += [sketch, checksum.view(torch.float64).reshape(1)]  # the bits travel in a float64
        row = torch.cat(parts)
        if row.device.type != "cuda":  # on the host already, or another accelerator: a synchronous copy
            self._queued.append(_TorchQueued(row.cpu(), None))
            return
        self._queued.append(_TorchQueued(*copy_to_host(row)))

    def launch_waiting(self) -> None:
        """Launch the summaries of the tensors waiting to share a launch (``defer``)."""
        for arena in self._fused.values():
            arena.launch_waiting()

    def resolve_ready(self) -> list[Summary]:
        """The summaries of the oldest queued tensors whose values are on the host, without waiting."""
        return self._pop(wait=False)

    def resolve_next(self) -> list[Summary]:
        """At least the oldest queued summary, waiting only for the batch that holds it; with the
        batches after it still on their way, the caller can write these meanwhile."""
        if not self._queued:
            return []
        head = self._queued[0]
        if isinstance(head, _TorchQueued):
            if head.done is not None:
                head.done.synchronize()
        elif not self._taken[id(head)]:
            head.seal()
            head.wait_oldest()
        return self._pop(wait=False)

    def resolve(self) -> list[Summary]:
        """Every queued summary (waits for the devices) and start afresh."""
        return self._pop(wait=True)

    def _pop(self, *, wait: bool) -> list[Summary]:
        for arena in self._fused.values():
            sketch_rows, stats, checksums = arena.take(wait=wait)
            taken = self._taken[id(arena)]
            rows = stats.tolist()  # Python floats and ints, converted in one call per batch
            if self.sketches:
                taken.extend(map(Summary, rows, sketch_rows, checksums.tolist()))
            else:
                taken.extend(Summary(row, None, None) for row in rows)
        out: list[Summary] = []
        while self._queued:
            head = self._queued[0]
            if isinstance(head, _TorchQueued):
                if head.done is not None and not wait and not head.done.query():
                    break
                if head.done is not None:
                    head.done.synchronize()
                out.append(_torch_summary(head, self.sketches))
            else:
                taken = self._taken[id(head)]
                if not taken:
                    break  # not on the host yet (wait=True took everything)
                out.append(taken.popleft())
            self._queued.popleft()
        return out


def _torch_summary(queued: _TorchQueued, sketched: bool) -> Summary:
    values = queued.row.numpy()
    count = len(STAT_ORDER)
    stats = [float(v) for v in values[:count]]
    if not sketched:
        return Summary(stats, None, None)
    checksum = int(values[count + WIDTH :].view(np.int64)[0]) % (1 << 64)  # int64 bits of the wrapped sum
    return Summary(stats, values[count : count + WIDTH].copy(), checksum)


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
