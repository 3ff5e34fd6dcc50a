"""The Triton kernels that capture/summary_triton.py launches: one tensor's statistics partials,
CountSketch and checksum in one pass (:func:`summary_kernel`), and a batch's reduction
(:func:`summary_reduce_kernel`). The definitions they follow are capture/stats_partials.py and
capture/sketch.py; summary_triton.py explains the launch shape and the arena.

The kernel is bound by instructions per element, not by its loads (reading two steps ahead never
helped: benchmarks/results/h200_2026-12-01_session5/). So each program first takes a fast path that
assumes its elements are finite: no NaN / ±Inf tests, no masked selects, rows outside the tensor
loaded as the tensor's first element (they add 0 to the shifted sums and nothing new to min / max)
and weighted 0 in the sketch and checksum. A NaN or ±Inf, or a float32 sum of squares that
overflows, makes the program's sum of squares non-finite; that program then reads its rows again on
the exact path, which counts and excludes non-finite elements and sums in float64 (values up to
float32's largest). Minima, maxima, counts and the checksum are the same on both paths, bit for bit;
the sums agree to rounding.
"""

from __future__ import annotations

import triton
import triton.language as tl


# No type annotations on the kernels: Triton resolves annotation names as kernel globals.
# fmt: off
@triton.jit  # type: ignore[untyped-decorator]
def _rows(  # type: ignore[no-untyped-def]
    x_ptr, mix_ptr, row, live, n, fill, W: tl.constexpr, SKETCH: tl.constexpr, PARTIAL: tl.constexpr,
):
    # fmt: on
    # One tile [TR, W] of whole rows, element j of row r at [r, j]: a row is contiguous, so the loads
    # are 16-byte vectors as long as the mask is constant along a row, which it is except for the
    # zero-padded last row (PARTIAL, read once per tensor). Masked-off elements load as `fill`.
    # Returns the tile, its mask and the rows' hashes (the sketch's sign and the checksum's weight).
    cols = tl.arange(0, W)
    if PARTIAL:
        inside = live[:, None] & (cols[None, :] < (n - row * W)[:, None])
    else:
        inside = tl.broadcast_to(live[:, None], (live.shape[0], W))
    x = tl.load(x_ptr + (row * W)[:, None] + cols[None, :], mask=inside, other=fill)
    if SKETCH:
        mixed = tl.load(mix_ptr + row, mask=live, other=0).to(tl.uint64, bitcast=True)
    else:
        mixed = tl.zeros(live.shape, tl.uint64)
    return x, inside, mixed


# fmt: off
@triton.jit  # type: ignore[untyped-decorator]
def _checksum_runs(x, W: tl.constexpr, BITS: tl.constexpr, INT: tl.constexpr, VEC: tl.constexpr):  # type: ignore[no-untyped-def]
    # fmt: on
    # A row's checksum weight is the same for all its elements: sum each run of VEC elements of a
    # row first (those a thread holds: no exchange between threads), exactly; the caller then does
    # one 64-bit multiply per run. A 16-bit pattern times a column weight (< 2**9) is below 2**24,
    # so runs of up to 64 of them sum exactly in int32.
    cols = tl.arange(0, W)
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
    return runs.to(tl.uint64, bitcast=True)


# fmt: off
@triton.jit  # type: ignore[untyped-decorator]
def _step(  # type: ignore[no-untyped-def]
    x, inside, mixed, here, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
    W: tl.constexpr, SIGN_BIT: tl.constexpr, BITS: tl.constexpr, SKETCH: tl.constexpr,
    INT: tl.constexpr, ACC: tl.constexpr, VEC: tl.constexpr, FAST: tl.constexpr,
):
    # fmt: on
    # One tile into the accumulators. `inside`: the elements in the tensor; `here`: the rows in it.
    single = x.to(ACC)  # exact for bf16 / fp16 / fp32, NaN and ±Inf included
    negative = ((mixed >> SIGN_BIT) & 1) != 0
    if FAST:
        # Elements assumed finite (the caller checks); rows outside the tensor hold its first element
        centred = single - shift
        total += centred
        squares += centred * centred
        vmin = tl.minimum(vmin, single)
        vmax = tl.maximum(vmax, single)
        if SKETCH:
            sign = tl.where(here, tl.where(negative, -1.0, 1.0), 0.0).to(tl.float64)
            sketch = tl.fma(single.to(tl.float64), sign[:, None], sketch)  # the product is exact
            check += _checksum_runs(x, W, BITS, INT, VEC) * tl.where(here, mixed * 2 + 1, 0)[:, None]
    else:
        is_nan = single != single
        is_inf = tl.abs(single) == float("inf")
        finite = inside & ~is_nan & ~is_inf
        centred = tl.where(finite, single.to(tl.float64) - shift.to(tl.float64), 0.0)
        total += centred
        squares += centred * centred
        vmin = tl.minimum(vmin, tl.where(finite, single, float("inf")))
        vmax = tl.maximum(vmax, tl.where(finite, single, float("-inf")))
        nonfinite += (inside & is_nan).to(tl.int32) + (inside & is_inf).to(tl.int32) * 65536
        if SKETCH:
            sketch += tl.where(finite, tl.where(negative[:, None], -single, single), 0.0).to(tl.float64)
            check += _checksum_runs(x, W, BITS, INT, VEC) * (mixed * 2 + 1)[:, None]  # masked-off: 0
    return sketch, total, squares, vmin, vmax, nonfinite, check


# fmt: off
@triton.jit  # type: ignore[untyped-decorator]
def _scan(  # type: ignore[no-untyped-def]
    x_ptr, mix_ptr, perm_ptr, start_ptr, below_ptr, n, full_rows, pid, shift, fill,
    W: tl.constexpr, TR: tl.constexpr, GRID: tl.constexpr, BLOCK_ROWS: tl.constexpr,
    SIGN_BIT: tl.constexpr, BITS: tl.constexpr, SKETCH: tl.constexpr, INT: tl.constexpr, ACC: tl.constexpr,
    VEC: tl.constexpr, FAST: tl.constexpr,
):
    # fmt: on
    # The program's full rows into element-wise accumulators, reduced once at the end by the caller:
    # a reduction per tile (shared memory and barriers) would cost more than reading the tile.
    # With the sketch, program p sums the rows of one offset o = p mod W (capture/sketch.py: element
    # j of row r goes to bucket (j + o_r) mod W), read straight, and the caller rotates its W sums
    # once: a per-row rotated gather cannot use vector loads. The rows of offset o, ascending, come
    # from a table built once (summary_triton._RowTables); `below` counts those under each block of
    # rows. Statistics only: rows in their order, grid-stride. Either way the next step's rows are
    # read before this step's are summed (2048 x 14336 bf16 on the H200: 66 -> 57 µs).
    lanes = tl.arange(0, TR).to(tl.int64)
    sketch = tl.zeros([TR, W], tl.float64)
    if FAST:
        total = tl.zeros([TR, W], ACC)  # per-lane sums stay short: float32 suffices, as the torch path's chunks
        squares = tl.zeros([TR, W], ACC)
    else:
        total = tl.zeros([TR, W], tl.float64)
        squares = tl.zeros([TR, W], tl.float64)
    vmin = tl.full([TR, W], float("inf"), ACC)
    vmax = tl.full([TR, W], float("-inf"), ACC)
    nonfinite = tl.zeros([TR, W], tl.int32)  # NaN count + 65536 · ±Inf count (< 65536 per lane, n < 2**36)
    check = tl.zeros([TR, W // VEC], tl.uint64)  # per run of VEC elements a thread holds
    if SKETCH:
        group = pid % W
        segments: tl.constexpr = GRID // W
        begin = tl.load(start_ptr + group)
        count = tl.load(below_ptr + ((full_rows + BLOCK_ROWS - 1) // BLOCK_ROWS) * W + group)
        steps = tl.cdiv(count, segments * TR)
        at = (pid // W) * TR + lanes
        row = tl.load(perm_ptr + begin + at, mask=at < count, other=0).to(tl.int64)
        here = (at < count) & (row < full_rows)
        x, inside, mixed = _rows(x_ptr, mix_ptr, row, here, n, fill, W, SKETCH, False)
        at = at + segments * TR
        row = tl.load(perm_ptr + begin + at, mask=at < count, other=0).to(tl.int64)
        for _ in range(0, steps):
            live = (at < count) & (row < full_rows)
            at_after = at + segments * TR
            row_after = tl.load(perm_ptr + begin + at_after, mask=at_after < count, other=0).to(tl.int64)
            x_next, inside_next, mixed_next = _rows(x_ptr, mix_ptr, row, live, n, fill, W, SKETCH, False)
            sketch, total, squares, vmin, vmax, nonfinite, check = _step(
                x, inside, mixed, here, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
                W, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC, FAST,
            )  # fmt: skip
            x, inside, mixed, here, at, row = x_next, inside_next, mixed_next, live, at_after, row_after
    else:
        steps = tl.cdiv(full_rows, GRID * TR)
        row = pid * TR + lanes
        here = row < full_rows
        x, inside, mixed = _rows(x_ptr, mix_ptr, row, here, n, fill, W, SKETCH, False)
        for _ in range(0, steps):
            row = row + GRID * TR
            live = row < full_rows
            x_next, inside_next, mixed_next = _rows(x_ptr, mix_ptr, row, live, n, fill, W, SKETCH, False)
            sketch, total, squares, vmin, vmax, nonfinite, check = _step(
                x, inside, mixed, here, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
                W, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC, FAST,
            )  # fmt: skip
            x, inside, mixed, here = x_next, inside_next, mixed_next, live
    return sketch, total, squares, vmin, vmax, nonfinite, check


# fmt: off
@triton.jit(do_not_specialize=["n_arg", "full_rows_arg"])  # type: ignore[untyped-decorator]
def summary_kernel(  # type: ignore[no-untyped-def]
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
    pid = tl.program_id(0)
    cols = tl.arange(0, W)
    group = pid % W
    # ACC: float32 for float tensors (exact for their elements), float64 for integer ones (exact below
    # 2**53, as the torch path's float64 sums)
    fill = tl.load(x_ptr)
    first = fill.to(ACC)
    shift = tl.where(tl.abs(first) < float("inf"), first, 0.0)  # NaN and ±Inf fail the comparison
    if INT:
        sketch, total, squares, vmin, vmax, nonfinite, check = _scan(
            x_ptr, mix_ptr, perm_ptr, start_ptr, below_ptr, n, full_rows, pid, shift, 0,
            W, TR, GRID, BLOCK_ROWS, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC, False,
        )  # fmt: skip
    else:
        # The fast path, then the exact one if it met a non-finite element or an overflow. A first
        # element that is not finite fills the rows outside the tensor with it, and sends only the
        # programs that have such rows (or the element) down the exact path.
        sketch, total, squares, vmin, vmax, nonfinite, check = _scan(
            x_ptr, mix_ptr, perm_ptr, start_ptr, below_ptr, n, full_rows, pid, shift, fill,
            W, TR, GRID, BLOCK_ROWS, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC, True,
        )  # fmt: skip
        probe = tl.sum(tl.sum(squares, axis=1), axis=0)
        total, squares = total.to(tl.float64), squares.to(tl.float64)  # the exact path's sums' type
        if (probe != probe) | (tl.abs(probe) == float("inf")):
            sketch, total, squares, vmin, vmax, nonfinite, check = _scan(
                x_ptr, mix_ptr, perm_ptr, start_ptr, below_ptr, n, full_rows, pid, shift, 0,
                W, TR, GRID, BLOCK_ROWS, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC, False,
            )  # fmt: skip
    if SKETCH:
        tail_here = ((tl.load(mix_ptr + full_rows) & (W - 1)) == group) & (pid // W == 0)
    else:
        tail_here = pid == 0
    if tail_here & (n > full_rows * W):  # the zero-padded last row, read by one program, exactly
        lanes = tl.arange(0, TR).to(tl.int64)
        x, inside, mixed = _rows(x_ptr, mix_ptr, full_rows + lanes * 0, lanes == 0, n, 0, W, SKETCH, True)
        sketch, total, squares, vmin, vmax, nonfinite, check = _step(
            x, inside, mixed, lanes == 0, shift, sketch, total, squares, vmin, vmax, nonfinite, check,
            W, SIGN_BIT, BITS, SKETCH, INT, ACC, VEC, False,
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
def summary_reduce_kernel(  # type: ignore[no-untyped-def]
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
