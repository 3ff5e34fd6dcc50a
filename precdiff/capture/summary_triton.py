"""A tensor's whole summary in one pass on CUDA: statistics, sketch and checksum (Triton).

A summary capture hooks hundreds (module level) to thousands (op level) of tensors per forward, and
the forward only stays fast if the host never waits for the device and spends few µs per tensor. So:

- one kernel launch per tensor (or per few small tensors of one dtype, :func:`launch_many`) reads
  it once and computes the statistics partials of capture/stats_partials.py, the CountSketch and
  the checksum of capture/sketch.py (the same functions: the sketch to float64 rounding, the
  checksum bit for bit);
- always the same number of programs (:data:`LAUNCH`), each writing one partial row into a slot of
  a preallocated device arena (capture/fused_summaries.py), so that a batch of tensors is reduced
  by one launch of :func:`launch_reduce`, in a fixed order (deterministic), straight into pinned
  host memory (it replaced six torch ops and a host copy, about 100 µs less host time per batch
  on the H200: benchmarks/results/h200_2026-12-01_session5/);
- launched through a compiled-kernel cache keyed by dtype and alignment only: the sizes are not
  specialised (``do_not_specialize``), so a forward with many shapes compiles once per dtype;
- whole rows of WIDTH elements are read with 16-byte vector loads: with the sketch, each program
  sums the rows of one row offset and rotates its sums once, instead of gathering each row rotated
  (scalar loads); the row hashes and the rows of each offset come from device tables built once;
- the kernels themselves (capture/summary_kernels.py) take a fast path on finite elements and read
  a program's rows again, exactly, only where it met a NaN, ±Inf or an overflow.
  A 2048 x 14336 bf16 tensor with the sketch: 100 µs with the rotated gather (session 4), 58.6 µs
  with vector loads, 46.4 µs with the fast path; statistics only 31.4 -> 19.2 µs, below a torch
  sum of the same tensor (21-23 µs) (H200, benchmarks/results/h200_2026-12-01_session6/, run y).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from precdiff.capture.sketch import ROW_SEED, SIGN_BIT, WIDTH, mix
from precdiff.capture.stats_partials import PARTIAL_FIELDS
from precdiff.capture.summary_kernels import summary_kernel, summary_reduce_kernel
from precdiff.kernels.triton_launch import launch_keyed

# Launch shape per mode (sketch, statistics only): (programs per tensor, whatever its size, so fixed
# partial rows per arena slot; rows of WIDTH elements a program reads per step; warps; elements of a
# row summed together for the checksum). With the sketch, the programs are WIDTH groups (one per row
# offset) times a few segments, so GRID is a multiple of WIDTH. Chosen by H200 sweeps
# (benchmarks/sweep_summary_kernel.py; with the sketch, of the kernel with its fast path:
# results/h200_2026-12-01_session6/run_x_kernel_sweep.txt).
LAUNCH = {True: (256, 8, 4, 8), False: (1056, 2, 4, WIDTH)}
# Tensors per arena before a device-side reduction is queued and copied to the host. Module level
# (SLOTS): small batches, so that what is left to write once the device finishes is a few rows;
# op level (SHARED_SLOTS), where the host's time bounds the capture: fewer reductions.
SLOTS = 16
SHARED_SLOTS = 64
ROW = WIDTH + len(PARTIAL_FIELDS)  # one partial row: the sketch, then the statistics partials
INTEGER = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)
SUPPORTED = (torch.float32, torch.float16, torch.bfloat16, *INTEGER)
BLOCK_ROWS = 256  # rows per block of the row tables' per-offset counts
# Deferred launches (op level, where a forward has thousands of mostly small tensors and the host's
# time per tensor bounds the capture): up to SHARED tensors of one dtype, each of at most
# SHARED_BYTES and together of at most SHARED_WAITING bytes, share one launch. A shared launch gives
# each tensor as many programs as its own launch would, so sharing costs no device time, and it
# saves the host a launch per tensor (most op outputs of an 8B model at 2,048 tokens are 16-58 MB,
# over the 4 MiB that the fourth session allowed). The waiting tensors' memory cannot be reused until
# their launch: SHARED_WAITING bounds what a capture holds on to per dtype.
SHARED = 16
SHARED_BYTES = 1 << 26
SHARED_WAITING = 1 << 27


class _RowTables(NamedTuple):
    """Per-row tables of the sketch for rows ``r < size`` (capture/sketch.py), on one device."""

    mixes: torch.Tensor  # int64 [size]: mix(r, ROW_SEED), whose low bits are the row's offset o_r
    perm: torch.Tensor  # int32 [size]: the rows grouped by offset, ascending within a group
    start: torch.Tensor  # int32 [WIDTH]: where each offset's group begins in perm
    below: torch.Tensor  # int32 [size / BLOCK_ROWS + 1, WIDTH]: rows of each offset under b blocks


_tables: dict[torch.device, _RowTables] = {}


def row_tables(device: torch.device, rows: int) -> _RowTables:
    """The row tables for at least ``rows`` rows, built on the device once per process and grown by
    doubling: the kernel reads a row's hash instead of computing it (splitmix64 per row cost more than
    reading the row), and each program finds the rows of its offset without a search."""
    tables = _tables.get(device)
    if tables is None or tables.mixes.numel() < rows:
        size = max(1 << 16, 1 << (rows - 1).bit_length())
        mixes = mix(torch.arange(size, dtype=torch.int64, device=device), ROW_SEED)
        offsets = mixes & (WIDTH - 1)
        perm = torch.sort(offsets, stable=True).indices.to(torch.int32)
        per_group = torch.bincount(offsets, minlength=WIDTH)
        start = (torch.cumsum(per_group, 0) - per_group).to(torch.int32)
        blocks = torch.arange(size, device=device) // BLOCK_ROWS
        counts = torch.bincount(blocks * WIDTH + offsets, minlength=size // BLOCK_ROWS * WIDTH)
        below = torch.cat([counts.new_zeros(1, WIDTH), counts.view(-1, WIDTH).cumsum(0)]).to(torch.int32)
        tables = _tables[device] = _RowTables(mixes, perm, start, below)
    return tables


def launch(x: torch.Tensor, parts: torch.Tensor, checks: torch.Tensor, *, sketches: bool) -> None:
    """Queue one contiguous tensor's partial summary rows into ``parts`` [GRID, ROW] and ``checks`` [GRID]."""
    n = x.numel()
    tables = row_tables(x.device, n // WIDTH + 1)  # every full row and the partial one
    _launch(x, x, tables, parts, checks, n, 1, sketches, many=False)


def launch_many(
    xs: list[torch.Tensor], table: torch.Tensor, parts: torch.Tensor, checks: torch.Tensor, *, sketches: bool
) -> None:
    """Queue the summaries of several contiguous, 16-byte aligned tensors of one dtype, each of fewer
    than 2**31 elements, in one launch: ``table`` (int64 [len(xs), 3] on the device) holds each one's
    (address, numel, slot); ``parts`` [slots, GRID, ROW] and ``checks`` [slots, GRID] are the arena."""
    tables = row_tables(xs[0].device, max(x.numel() for x in xs) // WIDTH + 1)
    _launch(xs[0], table, tables, parts, checks, 0, len(xs), sketches, many=True)


def _launch(
    x: torch.Tensor,
    table: torch.Tensor,
    tables: _RowTables,
    parts: torch.Tensor,
    checks: torch.Tensor,
    n: int,
    count: int,
    sketches: bool,
    *,
    many: bool,
) -> None:
    """One launch over ``count`` tensors: ``x`` alone (``n`` its numel), or with ``many`` those of
    ``table`` (``x`` the first of them, for its dtype; ``n`` unused)."""
    grid, tile_rows, warps, run = LAUNCH[sketches]
    integer = x.dtype in INTEGER
    launch_keyed(
        # all else Triton specialises on is fixed,
        # and the launch shape, which benchmarks may change between launches
        (x.dtype, sketches, many, x.data_ptr() % 16 == 0, n >= 1 << 31, LAUNCH[sketches]),
        summary_kernel,
        (grid, count),
        x, table, tables.mixes, tables.perm, tables.start, tables.below, parts, checks, n, n // WIDTH,
        WIDTH, tile_rows, grid, ROW, BLOCK_ROWS, SIGN_BIT, x.element_size() * 8, sketches,
        integer, tl.float64 if integer else tl.float32, run, many,
        tensors=8, num_warps=warps,
    )  # fmt: skip


# The reduction's tile: partial rows per step, columns per program. One program per slot reading its
# ~1 MB of partial rows alone took ~130 µs of device time per batch; spread over column blocks, the
# slots' programs share the work.
_REDUCE_STEP, _REDUCE_COLS = 32, 32


def launch_reduce(parts: torch.Tensor, checks: torch.Tensor, out: torch.Tensor, count: int) -> None:
    """Queue the reduction of arena slots ``0..count`` (``parts`` [slots, GRID, ROW] float64, ``checks``
    [slots, GRID] int64) into ``out`` [≥ count, ROW + 1] float64 in pinned host memory, written by
    the device directly: one launch, and no copy to queue after it."""
    grid = parts.shape[1]
    # out.is_pinned() is not asserted here: it asks the CUDA runtime, per batch; FusedSummaries, the
    # one caller, makes its buffers with pin_memory=True.
    assert grid % _REDUCE_STEP == 0, "whole steps of partial rows"
    launch_keyed(
        (grid,),
        summary_reduce_kernel,
        (count, triton.cdiv(ROW, _REDUCE_COLS)),
        parts, checks, out.data_ptr(), grid, ROW, WIDTH, _REDUCE_COLS, _REDUCE_STEP,
        tensors=2, num_warps=4,
    )  # fmt: skip
