"""A tensor's whole summary in one pass on CUDA: statistics, sketch and checksum (Triton).

A summary capture hooks hundreds (module level) to thousands (op level) of tensors per forward, and
the forward only stays fast if the host never waits for the device and spends few µs per tensor. So:

- one kernel launch per tensor reads it once and computes the statistics partials of
  capture/stats_partials.py, the CountSketch and the checksum of capture/sketch.py (the same
  functions: the sketch to float64 rounding, the checksum bit for bit);
- always the same number of programs (:data:`LAUNCH`), each writing one partial row into a slot of
  a preallocated device arena, so that a batch of tensors is reduced on the device by a few torch ops in a fixed order
  (deterministic) instead of one reduction per tensor;
- launched through a compiled-kernel cache keyed by dtype and alignment only: the sizes are not
  specialised (``do_not_specialize``), so a forward with many shapes compiles once per dtype;
- one non-blocking copy to the host per batch of :data:`SLOTS` tensors, none per tensor;
- the row hashes (splitmix64, two 64-bit multiplies) come from a device table built once: computed
  per element they made the kernel integer-bound (165 -> 100 µs for a 2048 x 14336 bf16 tensor
  with the launch shape below, H200).

Measured on the H200 (benchmarks/profile_capture.py): the separate statistics kernel cost 41 µs of
host time per tensor and the separate sketch 54 µs; see benchmarks/results for the fused figures.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np
import torch
import triton
import triton.language as tl

from precdiff.capture.sketch import ROW_SEED, SIGN_BIT, WIDTH, mix
from precdiff.capture.stats_partials import PARTIAL_FIELDS, finish_partials
from precdiff.kernels.triton_launch import launch_keyed
from precdiff.store.format import STAT_NAMES

# Launch shape per mode (sketch, statistics only): (programs per tensor, whatever its size, so fixed
# partial rows per arena slot; rows of WIDTH elements a program reads per step; warps). Chosen on the
# H200 by a sweep of TR 2-16 x GRID 264-2112 x 4/8 warps on the 8B shape's bf16 tensors
# (benchmarks/results/h200_2026-12-01_session3/kernel_sweep.txt): more rows per step or more warps
# cost registers and occupancy faster than they add loads in flight.
LAUNCH = {True: (528, 4, 4), False: (1056, 2, 4)}
SLOTS = 64  # tensors per arena before a device-side reduction is queued (36 MB of device memory)
ROW = WIDTH + len(PARTIAL_FIELDS)  # one partial row: the sketch, then the statistics partials
INTEGER = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)
SUPPORTED = (torch.float32, torch.float16, torch.bfloat16, *INTEGER)


# No type annotations on the kernels: Triton resolves annotation names as kernel globals.
# fmt: off
@triton.jit(do_not_specialize=["n", "rows", "tiles"])  # type: ignore[untyped-decorator]
def _summary_kernel(  # type: ignore[no-untyped-def]
    x_ptr, mix_ptr, part_ptr, check_ptr, n, rows, tiles,
    W: tl.constexpr, TR: tl.constexpr, GRID: tl.constexpr, ROW: tl.constexpr,
    SIGN_BIT: tl.constexpr, BITS: tl.constexpr, SKETCH: tl.constexpr, INT: tl.constexpr, ACC: tl.constexpr,
):
    # fmt: on
    # The tile is [W, TR]: bucket k of row r at [k, r]. Triton lays out a tile whose addresses it
    # cannot prove contiguous with its last axis fastest, so each thread holds one row and W/32 of
    # its buckets: a row's hash, sign and weight are loaded once per W/32 elements, not per element.
    pid = tl.program_id(0).to(tl.int64)
    buckets = tl.arange(0, W)
    lanes = tl.arange(0, TR).to(tl.int64)
    # ACC: float32 for float tensors (exact for their elements), float64 for integer ones (exact below
    # 2**53, as the torch path's float64 sums)
    first = tl.load(x_ptr).to(ACC)
    shift = tl.where(tl.abs(first) < float("inf"), first, 0.0)  # NaN and ±Inf fail the comparison
    # Element-wise accumulators over the program's tiles, reduced once at the end: a reduction per
    # tile (shared memory and barriers) would cost more than reading the tile.
    sketch = tl.zeros([W, TR], tl.float64)
    total = tl.zeros([W, TR], ACC)  # per-lane sums stay short: float32 suffices, as the torch path's chunks
    squares = tl.zeros([W, TR], ACC)
    vmin = tl.full([W, TR], float("inf"), ACC)
    vmax = tl.full([W, TR], float("-inf"), ACC)
    nonfinite = tl.zeros([W, TR], tl.int32)  # NaN count + 65536 · ±Inf count (< 65536 per lane, n < 2**36)
    check = tl.zeros([W, TR], tl.uint64)
    for t in range(tiles):
        row = (pid + t * GRID) * TR + lanes  # grid-stride over tiles of TR rows
        live = row < rows
        # Row r's element j goes to bucket (j + o_r) mod W (capture/sketch.py): bucket k reads element
        # (k - o_r) mod W; W is a power of two, so a mask, no division. The row hashes come from a
        # table (splitmix64 per row costs more than reading the row).
        if SKETCH:
            mixed = tl.load(mix_ptr + row, mask=live, other=0).to(tl.uint64, bitcast=True)
            offset = (mixed & (W - 1)).to(tl.int32)
            source = (buckets[:, None] - offset[None, :]) & (W - 1)
        else:  # statistics only: any order will do, the rows are read straight
            source = buckets[:, None] + tl.zeros([W, TR], tl.int32)
        inside = live[None, :] & (source < (n - row * W)[None, :])
        x = tl.load(x_ptr + (row * W)[None, :] + source, mask=inside, other=0)
        single = x.to(ACC)  # exact for bf16 / fp16 / fp32, NaN and ±Inf included
        is_nan = single != single
        is_inf = tl.abs(single) == float("inf")
        finite = inside & ~is_nan & ~is_inf
        centred = tl.where(finite, single - shift, 0.0)
        total += centred
        squares += centred * centred
        vmin = tl.minimum(vmin, tl.where(finite, single, float("inf")))
        vmax = tl.maximum(vmax, tl.where(finite, single, float("-inf")))
        nonfinite += (inside & is_nan).to(tl.int32) + (inside & is_inf).to(tl.int32) * 65536
        if SKETCH:
            negative = ((mixed >> SIGN_BIT) & 1) != 0
            signed = tl.where(negative[None, :], -single, single)
            sketch += tl.where(finite, signed, 0.0).to(tl.float64)
            if INT:
                bits = x.to(tl.int64)  # integers enter the checksum by value, as capture/sketch.py does
            elif BITS == 16:
                bits = x.to(tl.int16, bitcast=True).to(tl.int64)  # sign-extended, as capture/sketch.py does
            else:
                bits = x.to(tl.int32, bitcast=True).to(tl.int64)
            term = bits * (source * 2 + 1).to(tl.int64)  # |term| < 2**41: a 32-bit wide multiply
            weight = mixed * 2 + 1
            check += term.to(tl.uint64, bitcast=True) * weight[None, :]  # masked-off elements load as 0
    base = part_ptr + pid * ROW
    tl.store(base + buckets, tl.sum(sketch, axis=1))
    nan_count = tl.sum(tl.sum(nonfinite & 65535, axis=1), axis=0)
    inf_count = tl.sum(tl.sum(nonfinite >> 16, axis=1), axis=0)
    tl.store(base + W, tl.min(tl.min(vmin, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 1, tl.max(tl.max(vmax, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 2, 0.0)  # the finite count is n - NaN - ±Inf, filled in on the host
    tl.store(base + W + 3, tl.sum(tl.sum(total, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 4, tl.sum(tl.sum(squares, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 5, nan_count.to(tl.float64))
    tl.store(base + W + 6, inf_count.to(tl.float64))
    tl.store(base + W + 7, shift.to(tl.float64))
    tl.store(check_ptr + pid, tl.sum(tl.sum(check, axis=1), axis=0).to(tl.int64, bitcast=True))




class _Block(NamedTuple):
    """One reduced batch of slots on its way to the host."""

    device_rows: torch.Tensor  # [k, ROW + 1] float64, kept alive until its copy is done
    host: torch.Tensor  # the same in pinned host memory, filled by a non-blocking copy
    done: torch.cuda.Event
    numels: list[int]


class FusedSummaries:
    """Summaries of a stream of CUDA tensors of one device, kept on the device until taken.

    Every :data:`SLOTS` tensors the arena is reduced on the device and the batch starts its way to
    the host (non-blocking copy into pinned memory); :meth:`take` returns the results of the oldest
    tensors, in :meth:`add` order, either those already on the host (no waiting: a capture writes
    them while the forward runs) or all of them.
    """

    def __init__(self, device: torch.device, slots: int = SLOTS, *, sketches: bool = True):
        self.device = device
        self._sketches = sketches  # False: statistics only (the sketch columns and checksums are 0)
        self._slots = slots
        self._grid, self._tile_rows, self._warps = LAUNCH[sketches]
        self._parts = torch.empty((slots, self._grid, ROW), dtype=torch.float64, device=device)
        self._checks = torch.empty((slots, self._grid), dtype=torch.int64, device=device)
        self._slot_views = [(self._parts[i], self._checks[i]) for i in range(slots)]
        self._used = 0
        self._blocks: deque[_Block] = deque()
        self._numels: list[int] = []  # of the tensors in the slots not reduced yet
        self._mixes = torch.empty(0, dtype=torch.int64, device=device)

    def _row_mixes(self, rows: int) -> torch.Tensor:
        """``mix(r, ROW_SEED)`` for r < at least ``rows`` (capture/sketch.py), built on the device once
        and grown by doubling: the kernel reads a row's hash instead of computing it."""
        if self._mixes.numel() < rows:
            size = max(1 << 16, 1 << (rows - 1).bit_length())
            self._mixes = mix(torch.arange(size, dtype=torch.int64, device=self.device), ROW_SEED)
        return self._mixes

    def add(self, tensor: torch.Tensor) -> None:
        """Queue one float tensor's summary (no synchronisation)."""
        x = tensor.detach()
        if not x.is_contiguous():
            x = x.contiguous()
        n = x.numel()
        integer = x.dtype in INTEGER
        rows = -(-n // WIDTH)  # rows of WIDTH elements, the last one zero-padded
        tiles = -(-rows // self._tile_rows)
        parts, checks = self._slot_views[self._used]
        launch_keyed(
            (x.dtype, x.data_ptr() % 16 == 0, n >= 1 << 31, self._sketches),  # all else Triton specialises on is fixed
            _summary_kernel,
            (self._grid,),
            x, self._row_mixes(rows), parts, checks, n, rows, -(-tiles // self._grid),
            WIDTH, self._tile_rows, self._grid, ROW, SIGN_BIT, x.element_size() * 8, self._sketches,
            integer, tl.float64 if integer else tl.float32,
            num_warps=self._warps,
        )  # fmt: skip
        self._numels.append(n)
        self._used += 1
        if self._used == self._slots:
            self._reduce()

    def _reduce(self) -> None:
        """Queue the reduction of the used slots (fixed order: deterministic) and its copy to the
        host; the arena is reusable at once, later launches on the stream run after it."""
        if self._used == 0:
            return
        parts = self._parts[: self._used]
        checks = self._checks[: self._used].sum(dim=1)  # int64 wraps: the checksum is mod 2**64
        stats = parts[:, :, WIDTH:]
        rows = torch.cat(
            [
                parts[:, :, :WIDTH].sum(dim=1),
                stats[:, :, 0].amin(dim=1, keepdim=True),
                stats[:, :, 1].amax(dim=1, keepdim=True),
                stats[:, :, 2:7].sum(dim=1),
                stats[:, 0, 7:8],
                checks.view(torch.float64)[:, None],  # the bits travel in a float64 column
            ],
            dim=1,
        )
        host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
        host.copy_(rows, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        self._blocks.append(_Block(rows, host, done, self._numels))
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
        host = np.concatenate([block.host.numpy() for block in ready])  # a copy: the pinned buffers go back
        partials = host[:, WIDTH:-1]
        # NaN and ±Inf are counted, so the finite count is the rest (exact in float64 below 2**53).
        numels = np.asarray([n for block in ready for n in block.numels], dtype=np.float64)
        partials[:, 2] = numels - partials[:, 5] - partials[:, 6]
        checks = np.ascontiguousarray(host[:, -1]).view(np.uint64)
        return host[:, :WIDTH], finish_partials(partials), checks
