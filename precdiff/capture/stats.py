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
from typing import TYPE_CHECKING, Any, NamedTuple

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


class SummaryBlock(NamedTuple):
    """The summaries of consecutive queued tensors as arrays, row ``i`` the ``i``-th tensor's: what a
    capture writes, a batch of index rows at a time, with no object per tensor."""

    stats: np.ndarray  # float64 [k, 7], STAT_ORDER
    sketches: np.ndarray | None  # float64 [k, sketch.WIDTH]; None when sketches were not asked for
    checksums: np.ndarray | None  # uint64 [k]

    @property
    def size(self) -> int:
        """How many tensors' summaries."""
        return int(self.stats.shape[0])

    def rows(self, start: int, stop: int) -> SummaryBlock:
        """Rows ``start:stop``, as views."""
        sketches, checksums = self.sketches, self.checksums
        return SummaryBlock(
            self.stats[start:stop],
            None if sketches is None else sketches[start:stop],
            None if checksums is None else checksums[start:stop],
        )

    def summaries(self) -> list[Summary]:
        """One :class:`Summary` per row."""
        rows = self.stats.tolist()
        if self.sketches is None or self.checksums is None:
            return [Summary(row, None, None) for row in rows]
        return list(map(Summary, rows, self.sketches, self.checksums.tolist()))


def _empty_block(sketches: bool) -> SummaryBlock:
    if not sketches:
        return SummaryBlock(np.zeros((0, len(STAT_ORDER))), None, None)
    return SummaryBlock(np.zeros((0, len(STAT_ORDER))), np.zeros((0, WIDTH)), np.zeros(0, dtype=np.uint64))


def _joined(blocks: list[SummaryBlock], sketches: bool) -> SummaryBlock:
    if len(blocks) == 1:
        return blocks[0]
    if not blocks:
        return _empty_block(sketches)
    stats = np.concatenate([b.stats for b in blocks])
    if not sketches:
        return SummaryBlock(stats, None, None)
    return SummaryBlock(
        stats,
        np.concatenate([b.sketches for b in blocks if b.sketches is not None]),
        np.concatenate([b.checksums for b in blocks if b.checksums is not None]),
    )


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


class _Taken:
    """An arena's results on the host, not returned yet (a cursor into the rows taken from it)."""

    __slots__ = ("block", "next")

    def __init__(self, sketches: bool) -> None:
        self.block = _empty_block(sketches)
        self.next = 0

    def available(self) -> int:
        return self.block.size - self.next

    def extend(self, block: SummaryBlock, sketches: bool) -> None:
        rest = self.block.rows(self.next, self.block.size)
        self.block = _joined([rest, block], sketches) if rest.size else block
        self.next = 0

    def pop(self, count: int) -> SummaryBlock:
        start, self.next = self.next, self.next + count
        return self.block.rows(start, self.next)


class SummaryBatch:
    """Summaries queued on the tensors' devices, returned in :meth:`add` order by :meth:`take_all`
    (everything, one synchronisation per device) or :meth:`take_ready` (the oldest ones whose
    values already reached the host, without waiting: a capture writes them while the forward runs),
    as arrays; :meth:`resolve` and friends return one :class:`Summary` per tensor instead.

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
        # In add order, runs of consecutive tensors of one source: [arena, count] (its results come
        # out of the arena in order) or [torch-path row, 1].
        self._queued: deque[list[Any]] = deque()
        self._count = 0
        self._taken: dict[int, _Taken] = {}  # per arena

    def __len__(self) -> int:
        return self._count

    def _append(self, source: FusedSummaries | _TorchQueued) -> None:
        self._count += 1
        if self._queued and self._queued[-1][0] is source:
            self._queued[-1][1] += 1
        else:
            self._queued.append([source, 1])

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
                self._taken[id(arena)] = _Taken(self.sketches)
            arena.add(tensor)
            self._append(arena)
            return
        parts = [tensor_stats_torch(tensor)]
        if self.sketches:
            sketch, checksum = sketch_and_checksum(tensor)
            parts += [sketch, checksum.view(torch.float64).reshape(1)]  # the bits travel in a float64
        row = torch.cat(parts)
        if row.device.type != "cuda":  # on the host already, or another accelerator: a synchronous copy
            self._append(_TorchQueued(row.cpu(), None))
            return
        self._append(_TorchQueued(*copy_to_host(row)))

    def launch_waiting(self) -> None:
        """Launch the summaries of the tensors waiting to share a launch (``defer``)."""
        for arena in self._fused.values():
            arena.launch_waiting()

    def take_ready(self) -> SummaryBlock:
        """The summaries of the oldest queued tensors whose values are on the host, without waiting."""
        return self._pop(wait=False)

    def take_next(self) -> SummaryBlock:
        """At least the oldest queued summary, waiting only for the batch that holds it; with the
        batches after it still on their way, the caller can write these meanwhile."""
        if not self._queued:
            return _empty_block(self.sketches)
        head = self._queued[0][0]
        if isinstance(head, _TorchQueued):
            if head.done is not None:
                head.done.synchronize()
        elif not self._taken[id(head)].available():
            head.seal()
            head.wait_oldest()
        return self._pop(wait=False)

    def take_all(self) -> SummaryBlock:
        """Every queued summary (waits for the devices) and start afresh."""
        return self._pop(wait=True)

    def resolve_ready(self) -> list[Summary]:
        """:meth:`take_ready`, one :class:`Summary` per tensor."""
        return self.take_ready().summaries()

    def resolve_next(self) -> list[Summary]:
        """:meth:`take_next`, one :class:`Summary` per tensor."""
        return self.take_next().summaries()

    def resolve(self) -> list[Summary]:
        """:meth:`take_all`, one :class:`Summary` per tensor."""
        return self.take_all().summaries()

    def _pop(self, *, wait: bool) -> SummaryBlock:
        for arena in self._fused.values():
            sketch_rows, stats, checksums = arena.take(wait=wait)
            if stats.shape[0]:
                block = SummaryBlock(stats, *((sketch_rows, checksums) if self.sketches else (None, None)))
                self._taken[id(arena)].extend(block, self.sketches)
        out: list[SummaryBlock] = []
        while self._queued:
            run = self._queued[0]
            head = run[0]
            if isinstance(head, _TorchQueued):
                if head.done is not None and not wait and not head.done.query():
                    break
                if head.done is not None:
                    head.done.synchronize()
                out.append(_torch_summary(head, self.sketches))
                self._queued.popleft()
                self._count -= 1
                continue
            taken = self._taken[id(head)]
            count = min(run[1], taken.available())
            if count == 0:
                break  # not on the host yet (wait=True took everything)
            out.append(taken.pop(count))
            self._count -= count
            if count < run[1]:
                run[1] -= count
                break
            self._queued.popleft()
        return _joined(out, self.sketches)


def _torch_summary(queued: _TorchQueued, sketched: bool) -> SummaryBlock:
    values = queued.row.numpy()
    count = len(STAT_ORDER)
    stats = values[None, :count].copy()
    if not sketched:
        return SummaryBlock(stats, None, None)
    checksum = values[count + WIDTH :].view(np.uint64)  # the int64 bits of the wrapped sum, as unsigned
    return SummaryBlock(stats, values[None, count : count + WIDTH].copy(), checksum.copy())


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
