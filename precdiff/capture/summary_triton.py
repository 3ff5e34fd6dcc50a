"""A tensor's whole summary in one pass on CUDA: statistics, sketch and checksum (Triton).

A summary capture hooks hundreds (module level) to thousands (op level) of tensors per forward, and
the forward only stays fast if the host never waits for the device and spends few µs per tensor. So:

- one kernel launch per tensor reads it once and computes the statistics partials of
  capture/stats_partials.py, the CountSketch and the checksum of capture/sketch.py (the same
  functions: the sketch to float64 rounding, the checksum bit for bit);
- always :data:`GRID` programs, each writing one partial row into a slot of a preallocated device
  arena, so that a batch of tensors is reduced on the device by a few torch ops in a fixed order
  (deterministic) instead of one reduction per tensor;
- launched through a compiled-kernel cache keyed by dtype and alignment only: the sizes are not
  specialised (``do_not_specialize``), so a forward with many shapes compiles once per dtype;
- nothing is copied to the host until :meth:`FusedSummaries.collect`, one copy per batch.

Measured on the H200 (benchmarks/profile_capture.py): the separate statistics kernel cost 41 µs of
host time per tensor and the separate sketch 54 µs; see benchmarks/results for the fused figures.
"""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from precdiff.capture.sketch import ROW_SEED, SIGN_BIT, WIDTH
from precdiff.capture.stats_partials import PARTIAL_FIELDS
from precdiff.kernels.triton_launch import launch_keyed

GRID = 512  # programs per tensor, whatever its size: fixed partial rows per arena slot
TILE_ROWS = 4  # rows of WIDTH elements a program reads per step: 4 elements per thread and accumulator
SLOTS = 64  # tensors per arena before a device-side reduction is queued (36 MB of device memory)
ROW = WIDTH + len(PARTIAL_FIELDS)  # one partial row: the sketch, then the statistics partials
SUPPORTED = (torch.float32, torch.float16, torch.bfloat16)


# No type annotations on the kernels: Triton resolves annotation names as kernel globals.
@triton.jit
def _mix(z):  # type: ignore[no-untyped-def]
    """splitmix64's finaliser on uint64, capture/sketch.py's ``mix``."""
    z = z ^ (z >> 30)
    z = z * 0xBF58476D1CE4E5B9
    z = z ^ (z >> 27)
    z = z * 0x94D049BB133111EB
    return z ^ (z >> 31)


# fmt: off
@triton.jit(do_not_specialize=["n", "tiles"])  # type: ignore[untyped-decorator]
def _summary_kernel(  # type: ignore[no-untyped-def]
    x_ptr, part_ptr, check_ptr, n, tiles, seed,
    W: tl.constexpr, TR: tl.constexpr, GRID: tl.constexpr, ROW: tl.constexpr,
    SIGN_BIT: tl.constexpr, BITS: tl.constexpr, SKETCH: tl.constexpr,
):
    # fmt: on
    pid = tl.program_id(0).to(tl.int64)
    columns = tl.arange(0, W)
    lanes = tl.arange(0, TR).to(tl.int64)
    first = tl.load(x_ptr).to(tl.float32)
    shift = tl.where(tl.abs(first) < float("inf"), first, 0.0)  # NaN and ±Inf fail the comparison
    # Element-wise accumulators over the program's tiles, reduced once at the end: a reduction per
    # tile (shared memory and barriers) would cost more than reading the tile.
    sketch = tl.zeros([TR, W], tl.float64)
    total = tl.zeros([TR, W], tl.float32)  # per-lane sums stay short: float32, as the torch path's chunks
    squares = tl.zeros([TR, W], tl.float32)
    vmin = tl.full([TR, W], float("inf"), tl.float32)
    vmax = tl.full([TR, W], float("-inf"), tl.float32)
    finite_count = tl.zeros([TR, W], tl.int32)
    nan_count = tl.zeros([TR, W], tl.int32)
    inf_count = tl.zeros([TR, W], tl.int32)
    check = tl.zeros([TR, W], tl.uint64)
    for t in range(tiles):
        row = (pid + t * GRID) * TR + lanes  # grid-stride over tiles of TR rows
        mixed = _mix((row + seed).to(tl.uint64, bitcast=True))
        offset = (mixed & (W - 1)).to(tl.int32)
        sign = 1.0 - 2.0 * ((mixed >> SIGN_BIT) & 1).to(tl.float64)
        # Bucket k reads element (k - o_r) mod W of row r; W is a power of two: a mask, no division.
        source = (columns[None, :] - offset[:, None]) & (W - 1)
        index = row[:, None] * W + source
        inside = index < n
        x = tl.load(x_ptr + index, mask=inside, other=0)
        single = x.to(tl.float32)  # exact for bf16 / fp16 / fp32, NaN and ±Inf included
        is_nan = single != single
        is_inf = tl.abs(single) == float("inf")
        finite = inside & ~is_nan & ~is_inf
        if SKETCH:
            sketch += tl.where(finite, single, 0.0).to(tl.float64) * sign[:, None]
        centred = tl.where(finite, single - shift, 0.0)
        total += centred
        squares += centred * centred
        vmin = tl.minimum(vmin, tl.where(finite, single, float("inf")))
        vmax = tl.maximum(vmax, tl.where(finite, single, float("-inf")))
        finite_count += finite.to(tl.int32)
        nan_count += (inside & is_nan).to(tl.int32)
        inf_count += (inside & is_inf).to(tl.int32)
        if SKETCH:
            if BITS == 16:
                bits = x.to(tl.int16, bitcast=True).to(tl.int64)  # sign-extended, as capture/sketch.py does
            else:
                bits = x.to(tl.int32, bitcast=True).to(tl.int64)
            weight = (mixed[:, None] * 2 + 1) * (source * 2 + 1).to(tl.uint64)
            check += tl.where(inside, bits.to(tl.uint64, bitcast=True) * weight, tl.zeros([TR, W], tl.uint64))
    base = part_ptr + pid * ROW
    tl.store(base + columns, tl.sum(sketch, axis=0))
    tl.store(base + W, tl.min(tl.min(vmin, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 1, tl.max(tl.max(vmax, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 2, tl.sum(tl.sum(finite_count, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 3, tl.sum(tl.sum(total, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 4, tl.sum(tl.sum(squares, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 5, tl.sum(tl.sum(nan_count, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 6, tl.sum(tl.sum(inf_count, axis=1), axis=0).to(tl.float64))
    tl.store(base + W + 7, shift.to(tl.float64))
    tl.store(check_ptr + pid, tl.sum(tl.sum(check, axis=1), axis=0).to(tl.int64, bitcast=True))


_SEED = ROW_SEED - (1 << 64) if ROW_SEED >= 1 << 63 else ROW_SEED


class FusedSummaries:
    """Summaries of a stream of CUDA tensors of one device, kept on the device until collected.

    :meth:`add` returns the tensor's position in the next :meth:`collect` result.
    """

    def __init__(self, device: torch.device, slots: int = SLOTS, *, sketches: bool = True):
        self.device = device
        self._sketches = sketches  # False: statistics only (the sketch columns and checksums are 0)
        self._slots = slots
        self._parts = torch.empty((slots, GRID, ROW), dtype=torch.float64, device=device)
        self._checks = torch.empty((slots, GRID), dtype=torch.int64, device=device)
        self._slot_views = [(self._parts[i], self._checks[i]) for i in range(slots)]
        self._used = 0
        self._reduced: list[torch.Tensor] = []  # [k, ROW + 1] float64 per reduced batch of slots
        self._count = 0

    def add(self, tensor: torch.Tensor) -> int:
        """Queue one float tensor's summary (no synchronisation); returns its position."""
        x = tensor.detach()
        if not x.is_contiguous():
            x = x.contiguous()
        n = x.numel()
        rows = -(-n // WIDTH)  # rows of WIDTH elements, the last one zero-padded
        tiles = -(-rows // TILE_ROWS)
        parts, checks = self._slot_views[self._used]
        launch_keyed(
            (x.dtype, x.data_ptr() % 16 == 0, n >= 1 << 31, self._sketches),  # all else Triton specialises on is fixed
            _summary_kernel,
            (GRID,),
            x, parts, checks, n, -(-tiles // GRID), _SEED,
            WIDTH, TILE_ROWS, GRID, ROW, SIGN_BIT, x.element_size() * 8, self._sketches,
            num_warps=8,
        )  # fmt: skip
        self._used += 1
        if self._used == self._slots:
            self._reduce()
        self._count += 1
        return self._count - 1

    def _reduce(self) -> None:
        """Queue the reduction of the used slots (fixed order: deterministic); the arena is reusable
        at once, later launches on the stream run after it."""
        if self._used == 0:
            return
        parts = self._parts[: self._used]
        checks = self._checks[: self._used].sum(dim=1)  # int64 wraps: the checksum is mod 2**64
        stats = parts[:, :, WIDTH:]
        self._reduced.append(
            torch.cat(
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
        )
        self._used = 0

    def collect(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copy everything queued to the host (one synchronisation) and start afresh.

        Returns ``(sketches [k, WIDTH] float64, partials [k, 8] float64 in PARTIAL_FIELDS order, checksums [k]
        uint64)``; the stats rows go to
        :func:`~precdiff.capture.stats_partials.finish_partials`.
        """
        self._reduce()
        if not self._reduced:
            return np.zeros((0, WIDTH)), np.zeros((0, len(PARTIAL_FIELDS))), np.zeros(0, dtype=np.uint64)
        host = torch.cat(self._reduced).cpu().numpy()
        self._reduced.clear()
        self._count = 0
        checks = np.ascontiguousarray(host[:, -1]).view(np.uint64)
        return host[:, :WIDTH], host[:, WIDTH:-1], checks
