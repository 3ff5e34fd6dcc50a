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
  (scalar loads); the row hashes and the rows of each offset come from device tables built once.
  A 2048 x 14336 bf16 tensor with the sketch: 100 µs with the rotated gather, 57 µs now (H200,
  benchmarks/results/h200_2026-12-01_session4/), 32 µs for statistics only (a torch sum: 21 µs).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from precdiff.capture.sketch import ROW_SEED, SIGN_BIT, WIDTH, mix
from precdiff.capture.stats_partials import PARTIAL_FIELDS
from precdiff.kernels.triton_launch import launch_keyed

# Launch shape per mode (sketch, statistics only): (programs per tensor, whatever its size, so fixed
# partial rows per arena slot; rows of WIDTH elements a program reads per step; warps; elements of a
# row summed together for the checksum). With the sketch, the programs are WIDTH groups (one per row
# offset) times a few segments, so GRID is a multiple of WIDTH. Chosen by an H200 sweep
# (benchmarks/sweep_summary_kernel.py, results/h200_2026-12-01_session4/run_k_kernel_sweep.txt).
LAUNCH = {True: (512, 4, 4, 8), False: (1056, 2, 4, WIDTH)}
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


# No type annotations on the kernels: Triton resolves annotation names as kernel globals.
# fmt: off
@triton.jit  # type: ignore[untyped-decorator]
def _rows(  # type: ignore[no-untyped-def]
    x_ptr, mix_ptr, row, live, n, W: tl.constexpr, SKETCH: tl.constexpr, PARTIAL: tl.constexpr,
):
    # fmt: on
    # One tile [TR, W] of whole rows, element j of row r at [r, j]: a row is contiguous, so the loads
    # are 16-byte vectors as long as the mask is constant along a row, which it is except for the
    # zero-padded last row (PARTIAL, read once per tensor). Returns the tile, its mask and the rows'
    # hashes (the sketch's sign and the checksum's weight).
    cols = tl.arange(0, W)
    if PARTIAL:
        inside = live[:, None] & (cols[None, :] < (n - row * W)[:, None])
    else:
        inside = tl.broadcast_to(live[:, None], (live.shape[0], W))
    x = tl.load(x_ptr + (row * W)[:, None] + cols[None, :], mask=inside, other=0)
    if SKETCH:
        mixed = tl.load(mix_ptr + row, mask=live, other=0).to(tl.uint64, bitcast=True)
    else:
        mixed = tl.zeros(live.shape, tl.uint64)
    return x, inside, mixed


# fmt: off
@triton.jit  # type: ignore[untyped-decorator]
def _step(  # type: ignore[no-untyped-def]
    x, inside, mixed, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
    W: tl.constexpr, SIGN_BIT: tl.constexpr, BITS: tl.constexpr, SKETCH: tl.constexpr,
    INT: tl.constexpr, ACC: tl.constexpr, VEC: tl.constexpr,
):
    # fmt: on
    cols = tl.arange(0, W)
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
        sketch += tl.where(finite, tl.where(negative[:, None], -single, single), 0.0).to(tl.float64)
        # A row's checksum weight is the same for all its elements: sum each run of VEC elements of
        # a row first (those a thread holds: no exchange between threads), exactly, then one 64-bit
        # multiply per run; masked-off elements load as 0. A 16-bit pattern times a column weight
        # (< 2**9) is below 2**24, so runs of up to 64 of them sum exactly in int32.
        if INT:
            bits = x.to(tl.int64)  # integers enter the checksum by value, as capture/sketch.py does
        elif BITS == 16:
            bits = x.to(tl.int16, bitcast=True)  # sign-extended below, as capture/sketch.py does
            if VEC <= 64:
                bits = bits.to(tl.int32)
            else:
                bits = bits.to(tl.int64)
        else:
            bits = x.to(tl.int32, bitcast=True).to(tl.int64)
        weighted = bits * (cols * 2 + 1).to(bits.dtype)[None, :]
        runs = tl.sum(tl.reshape(weighted, (weighted.shape[0], W // VEC, VEC)), axis=2).to(tl.int64)
        check += runs.to(tl.uint64, bitcast=True) * (mixed * 2 + 1)[:, None]
    return sketch, total, squares, vmin, vmax, nonfinite, check


# fmt: off
@triton.jit(do_not_specialize=["n_arg", "full_rows_arg"])  # type: ignore[untyped-decorator]
def _summary_kernel(  # type: ignore[no-untyped-def]
    x_arg, table_ptr, mix_ptr, perm_ptr, start_ptr, below_ptr, part_arg, check_arg, n_arg, full_rows_arg,
    W: tl.constexpr, TR: tl.constexpr, GRID: tl.constexpr, ROW: tl.constexpr, BLOCK_ROWS: tl.constexpr,
    SIGN_BIT: tl.constexpr, BITS: tl.constexpr, SKETCH: tl.constexpr, INT: tl.constexpr, ACC: tl.constexpr,
    VEC: tl.constexpr, MANY: tl.constexpr,
):
    # fmt: on
    # MANY: one launch for several tensors of one dtype, all 16-byte aligned; program_id(1) picks one
    # from the table of (address, numel, arena slot) rows. Otherwise one tensor given as arguments,
    # its slot's partial rows at part_arg and check_arg.
    if MANY:
        entry = table_ptr + tl.program_id(1) * 3
        x_ptr = tl.multiple_of(tl.load(entry).to(tl.pointer_type(x_arg.dtype.element_ty)), 16)
        n = tl.load(entry + 1)
        full_rows = n // W
        slot = tl.load(entry + 2)
        part_ptr = part_arg + slot * (GRID * ROW)
        check_ptr = check_arg + slot * GRID
    else:
        x_ptr, n, full_rows, part_ptr, check_ptr = x_arg, n_arg, full_rows_arg, part_arg, check_arg
    # With the sketch, program p sums the rows of one offset o = p mod W (capture/sketch.py: element
    # j of row r goes to bucket (j + o_r) mod W), read straight, and rotates its W sums once at the
    # end: a per-row rotated gather cannot use vector loads. The rows of offset o, ascending, come
    # from a table built once (_RowTables); `below` counts those under each block of rows.
    # Statistics only: rows in their order, grid-stride.
    pid = tl.program_id(0)
    lanes = tl.arange(0, TR).to(tl.int64)
    cols = tl.arange(0, W)
    # ACC: float32 for float tensors (exact for their elements), float64 for integer ones (exact below
    # 2**53, as the torch path's float64 sums)
    first = tl.load(x_ptr).to(ACC)
    shift = tl.where(tl.abs(first) < float("inf"), first, 0.0)  # NaN and ±Inf fail the comparison
    # Element-wise accumulators over the program's tiles, reduced once at the end: a reduction per
    # tile (shared memory and barriers) would cost more than reading the tile.
    sketch = tl.zeros([TR, W], tl.float64)
    total = tl.zeros([TR, W], ACC)  # per-lane sums stay short: float32 suffices, as the torch path's chunks
    squares = tl.zeros([TR, W], ACC)
    vmin = tl.full([TR, W], float("inf"), ACC)
    vmax = tl.full([TR, W], float("-inf"), ACC)
    nonfinite = tl.zeros([TR, W], tl.int32)  # NaN count + 65536 · ±Inf count (< 65536 per lane, n < 2**36)
    check = tl.zeros([TR, W // VEC], tl.uint64)  # per run of VEC elements a thread holds
    group = pid % W
    segment = pid // W
    if SKETCH:
        segments: tl.constexpr = GRID // W
        begin = tl.load(start_ptr + group)
        count = tl.load(below_ptr + ((full_rows + BLOCK_ROWS - 1) // BLOCK_ROWS) * W + group)
        steps = tl.cdiv(count, segments * TR)
        # Loads run ahead of the arithmetic: the rows of step t + 1 are read, and the row numbers
        # of step t + 2 (the rows' addresses depend on them), before step t's tile is summed
        # (2048 x 14336 bf16 on the H200: 66 -> 57 µs; statistics only 46 -> 35 µs).
        at = segment * TR + lanes
        row = tl.load(perm_ptr + begin + at, mask=at < count, other=0).to(tl.int64)
        x, inside, mixed = _rows(x_ptr, mix_ptr, row, (at < count) & (row < full_rows), n, W, SKETCH, False)
        at = at + segments * TR
        row = tl.load(perm_ptr + begin + at, mask=at < count, other=0).to(tl.int64)
        for _ in range(0, steps):
            live = (at < count) & (row < full_rows)
            at_after = at + segments * TR
            row_after = tl.load(perm_ptr + begin + at_after, mask=at_after < count, other=0).to(tl.int64)
            x_next, inside_next, mixed_next = _rows(x_ptr, mix_ptr, row, live, n, W, SKETCH, False)
            sketch, total, squares, vmin, vmax, nonfinite, check = _step(
                x, inside, mixed, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
                W, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC,
            )  # fmt: skip
            x, inside, mixed, at, row = x_next, inside_next, mixed_next, at_after, row_after
        tail_here = (tl.load(mix_ptr + full_rows) & (W - 1)) == group
        tail_here = tail_here & (segment == 0)
    else:
        steps = tl.cdiv(full_rows, GRID * TR)
        # The next step's rows are read before this step's are summed.
        row = pid * TR + lanes
        x, inside, mixed = _rows(x_ptr, mix_ptr, row, row < full_rows, n, W, SKETCH, False)
        for _ in range(0, steps):
            row = row + GRID * TR
            x_next, inside_next, mixed_next = _rows(x_ptr, mix_ptr, row, row < full_rows, n, W, SKETCH, False)
            sketch, total, squares, vmin, vmax, nonfinite, check = _step(
                x, inside, mixed, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
                W, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC,
            )  # fmt: skip
            x, inside, mixed = x_next, inside_next, mixed_next
        tail_here = pid == 0
    if tail_here & (n > full_rows * W):  # the zero-padded last row, read by one program
        x, inside, mixed = _rows(x_ptr, mix_ptr, full_rows + lanes * 0, lanes == 0, n, W, SKETCH, True)
        sketch, total, squares, vmin, vmax, nonfinite, check = _step(
            x, inside, mixed, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
            W, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC,
        )  # fmt: skip
    base = part_ptr + pid * ROW
    if SKETCH:
        tl.store(base + ((cols + group) & (W - 1)), tl.sum(sketch, axis=0))  # column j -> bucket j + o
    else:
        tl.store(base + cols, tl.zeros([W], tl.float64))
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


# fmt: off
@triton.jit(do_not_specialize=["out_address"])  # type: ignore[untyped-decorator]
def _reduce_kernel(  # type: ignore[no-untyped-def]
    part_ptr, check_ptr, out_address,
    GRID: tl.constexpr, ROW: tl.constexpr, W: tl.constexpr, COLS: tl.constexpr, STEP: tl.constexpr,
):
    # fmt: on
    # Program (s, b) reduces columns [b·COLS, (b+1)·COLS) of arena slot s's GRID partial rows, in a
    # fixed order (deterministic), into row s of ROW + 1 float64 at out_address (pinned host memory,
    # which the device addresses directly): the sketch sums, the statistics partials (min of the
    # minima, max of the maxima, sums of the rest, row 0's shift); program (s, 0) also writes the
    # checksum's bits (int64 sums wrap: the checksum is mod 2**64).
    slot = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * COLS + tl.arange(0, COLS)
    used = cols < ROW
    parts = part_ptr + slot * (GRID * ROW)
    total = tl.zeros([COLS], tl.float64)
    low = tl.full([COLS], float("inf"), tl.float64)
    high = tl.full([COLS], float("-inf"), tl.float64)
    for first in range(0, GRID, STEP):
        lanes = first + tl.arange(0, STEP)
        tile = tl.load(parts + lanes[:, None] * ROW + cols[None, :], mask=used[None, :], other=0.0)
        total += tl.sum(tile, axis=0)
        low = tl.minimum(low, tl.min(tile, axis=0))
        high = tl.maximum(high, tl.max(tile, axis=0))
    shift = tl.load(parts + cols, mask=used, other=0.0)
    value = tl.where(cols == W, low, tl.where(cols == W + 1, high, tl.where(cols == W + 7, shift, total)))
    out = out_address.to(tl.pointer_type(tl.float64)) + slot * (ROW + 1)
    tl.store(out + cols, value, mask=used)
    if tl.program_id(1) == 0:
        check = tl.zeros([STEP], tl.int64)
        for first in range(0, GRID, STEP):
            check += tl.load(check_ptr + slot * GRID + first + tl.arange(0, STEP))
        tl.store((out + ROW).to(tl.pointer_type(tl.int64)), tl.sum(check, axis=0))


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
        _summary_kernel,
        (grid, count),
        x, table, tables.mixes, tables.perm, tables.start, tables.below, parts, checks, n, n // WIDTH,
        WIDTH, tile_rows, grid, ROW, BLOCK_ROWS, SIGN_BIT, x.element_size() * 8, sketches,
        integer, tl.float64 if integer else tl.float32, run, many,
        num_warps=warps,
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
        _reduce_kernel,
        (count, triton.cdiv(ROW, _REDUCE_COLS)),
        parts, checks, out.data_ptr(), grid, ROW, WIDTH, _REDUCE_COLS, _REDUCE_STEP,
        num_warps=4,
    )  # fmt: skip
