"""Summaries of a stream of CUDA tensors kept on the device until taken (the arena of
capture/summary_triton.py's kernel): per-tensor partial rows reduced a batch at a time by one kernel
that writes the results into pinned host memory; at op level, tensors of one dtype share a
launch."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np
import torch

from precdiff.capture.sketch import WIDTH
from precdiff.capture.stats_partials import finish_partials
from precdiff.capture.summary_triton import (
    LAUNCH,
    ROW,
    SHARED,
    SHARED_BYTES,
    SHARED_WAITING,
    SLOTS,
    launch,
    launch_many,
    launch_reduce,
)
from precdiff.store.format import STAT_NAMES


class _LaunchTables:
    """The (address, numel, slot) tables of shared launches: a ring of pinned host buffers, each copied
    without blocking into its own device buffer; a device buffer is overwritten only by a copy queued
    after the launch that read it. A host buffer is refilled only once its last copy is done: one
    event per GROUP copies, waited for a lap of the ring later (then the device runs RING launches
    behind the host, and it bounds the capture anyway). Each view of the buffers is made once, when
    first used: two slices and an event per launch were most of the host time of filling a table."""

    RING = 64  # shared launches the device may run behind the host before a refill waits
    GROUP = 16  # copies per event

    def __init__(self, device: torch.device):
        self._host = torch.empty((self.RING, SHARED, 3), dtype=torch.int64, pin_memory=True)
        self._device = torch.empty((self.RING, SHARED, 3), dtype=torch.int64, device=device)
        self._rows = self._host.numpy()
        # (buffer, table length) -> (pinned source, device destination) of the copy
        self._views: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._copied: list[torch.cuda.Event | None] = [None] * (self.RING // self.GROUP)
        self._next = 0

    def fill(self, rows: list[tuple[int, int, int]]) -> torch.Tensor:
        """The device table holding ``rows`` (its copy queued on the current stream)."""
        i, self._next = self._next, (self._next + 1) % self.RING
        group, place = divmod(i, self.GROUP)
        copied = self._copied[group]
        if place == 0 and copied is not None:
            # The group's copies of the last lap, queued RING fills ago: waits only when the device
            # runs that far behind.
            copied.synchronize()
        count = len(rows)
        self._rows[i, :count] = rows
        views = self._views.get((i, count))
        if views is None:
            views = self._views[i, count] = (self._host[i, :count], self._device[i, :count])
        source, table = views
        table.copy_(source, non_blocking=True)
        if place == self.GROUP - 1:
            event = self._copied[group] = copied or torch.cuda.Event()
            event.record()
        return table


class _Block(NamedTuple):
    """One batch of slots being reduced into pinned host memory."""

    host: torch.Tensor  # [slots, ROW + 1] float64, pinned; its first len(numels) rows are the batch's
    done: torch.cuda.Event  # recorded after the reduction: the rows are on the host once it is
    numels: list[int]


class FusedSummaries:
    """Summaries of a stream of CUDA tensors of one device, kept on the device until taken.

    Every ``slots`` tensors (capture/summary_triton.py's SLOTS or SHARED_SLOTS) the arena is reduced
    by one kernel that writes the batch's rows into pinned host memory, without blocking;
    :meth:`take` returns the results of the oldest tensors, in :meth:`add` order, either those
    already on the host (no waiting: a capture writes them while the forward runs) or all of them.
    """

    def __init__(
        self, device: torch.device, slots: int = SLOTS, *, sketches: bool = True, defer: bool = False
    ):
        self.device = device
        self._sketches = sketches  # False: statistics only (the sketch columns and checksums are 0)
        self._slots = slots
        grid = LAUNCH[sketches][0]
        self._parts = torch.empty((slots, grid, ROW), dtype=torch.float64, device=device)
        self._checks = torch.empty((slots, grid), dtype=torch.int64, device=device)
        self._slot_views = [(self._parts[i], self._checks[i]) for i in range(slots)]
        self._used = 0
        self._blocks: deque[_Block] = deque()
        # Pinned output buffers and events of the blocks taken, reused: a new pinned buffer and a new
        # event cost tens of µs of host time per batch.
        self._free: list[tuple[torch.Tensor, torch.cuda.Event]] = []
        self._numels: list[int] = []  # of the tensors in the slots not reduced yet
        # defer: tensors of up to SHARED_BYTES wait, per dtype, to share a launch (:meth:`launch_waiting`)
        self._defer = defer
        self._waiting: dict[torch.dtype, list[tuple[torch.Tensor, int]]] = {}
        self._waiting_bytes: dict[torch.dtype, int] = {}
        self._tables = _LaunchTables(device) if defer else None

    def add(self, tensor: torch.Tensor) -> None:
        """Queue one tensor's summary (no synchronisation). With ``defer``, one of up to SHARED_BYTES
        may only be launched later: the caller must call :meth:`launch_waiting` before anything
        writes to it."""
        x = tensor.detach() if tensor.requires_grad else tensor
        if not x.is_contiguous():
            x = x.contiguous()
        slot = self._used
        if self._defer and x.nbytes <= SHARED_BYTES and x.data_ptr() % 16 == 0:
            waiting = self._waiting.setdefault(x.dtype, [])
            waiting.append((x, slot))  # the reference keeps its memory from being reused meanwhile
            held = self._waiting_bytes.get(x.dtype, 0) + x.nbytes
            self._waiting_bytes[x.dtype] = held
            if len(waiting) == SHARED or held >= SHARED_WAITING:
                self._launch(x.dtype)
        else:
            parts, checks = self._slot_views[slot]
            launch(x, parts, checks, sketches=self._sketches)
        self._numels.append(x.numel())
        self._used += 1
        if self._used == self._slots:
            self._reduce()

    def launch_waiting(self) -> None:
        """Launch the summaries of the tensors waiting to share a launch."""
        for dtype in list(self._waiting):
            self._launch(dtype)

    def _launch(self, dtype: torch.dtype) -> None:
        waiting = self._waiting.pop(dtype)
        self._waiting_bytes.pop(dtype, None)
        assert self._tables is not None, "tensors waiting without deferred launches"
        table = self._tables.fill([(x.data_ptr(), x.numel(), slot) for x, slot in waiting])
        launch_many([x for x, _ in waiting], table, self._parts, self._checks, sketches=self._sketches)

    def _reduce(self) -> None:
        """Queue the reduction of the used slots (fixed order: deterministic) and its copy to the
        host; the arena is reusable at once, later launches on the stream run after it."""
        self.launch_waiting()
        if self._used == 0:
            return
        if self._free:
            host, done = self._free.pop()
        else:
            host = torch.empty((self._slots, ROW + 1), dtype=torch.float64, pin_memory=True)
            done = torch.cuda.Event()
        launch_reduce(self._parts, self._checks, host, self._used)
        done.record()
        self._blocks.append(_Block(host, done, self._numels))
        self._numels = []
        self._used = 0

    def seal(self) -> None:
        """Start the reduction and host copy of the tensors added so far (end of a forward)."""
        self._reduce()

    def wait_oldest(self) -> None:
        """Block until the oldest batch not taken yet is on the host."""
        if self._blocks:
            self._blocks[0].done.synchronize()

    def take(self, *, wait: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The results of the oldest tensors not taken yet, in :meth:`add` order: with ``wait``, of
        every tensor added (one synchronisation); without, of the batches already on the host.

        Returns ``(sketches [k, WIDTH] float64, statistics [k, 7] float64 in STAT_NAMES order,
        checksums [k] uint64)``.
        """
        if wait:
            self._reduce()
        ready: list[_Block] = []
        while self._blocks and (wait or self._blocks[0].done.query()):
            block = self._blocks.popleft()
            block.done.synchronize()
            ready.append(block)
        if not ready:
            return np.zeros((0, WIDTH)), np.zeros((0, len(STAT_NAMES))), np.zeros(0, dtype=np.uint64)
        host = np.concatenate([block.host.numpy()[: len(block.numels)] for block in ready])  # a copy
        self._free.extend((block.host, block.done) for block in ready)  # so the buffers can go back
        partials = host[:, WIDTH:-1]
        # NaN and ±Inf are counted, so the finite count is the rest (exact in float64 below 2**53).
        numels = np.asarray([n for block in ready for n in block.numels], dtype=np.float64)
        partials[:, 2] = numels - partials[:, 5] - partials[:, 6]
        checks = np.ascontiguousarray(host[:, -1]).view(np.uint64)
        return host[:, :WIDTH], finish_partials(partials), checks
