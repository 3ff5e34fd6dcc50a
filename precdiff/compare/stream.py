"""The streaming pass of ``compare`` over one stored tensor pair: whole-tensor and per-token sums at once.

The pair is read block by block (:meth:`~precdiff.store.reader.Capture.iter_raw_blocks`), and every block
is cut into cache-sized slices (:data:`~precdiff.compare.metrics.CACHE_ELEMENTS`) at the places where
:func:`~precdiff.compare.metrics.accumulate` cuts it. Each slice is decoded to float64 once into reused
buffers, and ``b − a`` is formed once for both the whole-tensor sums
(:func:`~precdiff.compare.metrics.finite_sums`) and the per-token sums
(:meth:`~precdiff.compare.per_token.TokenSums.measure`).

The sums stay those of the plain algorithms: the same ``np.dot`` calls on the same slices, the
per-token sums in storage order, and the merge in :func:`accumulate`'s grouping (slices into their block,
blocks into the total). So the result is bit for bit that of ``merge(accumulate(...))`` over the blocks
plus the per-token sums slice by slice (tests/compare/test_streaming_exact.py). Element-wise work whose
result does not depend on summation order (``|b − a|``, the squares, the count of unequal values) is
free to move, and it is done once per slice into buffers that stay in the CPU cache.

One thread does it all, on purpose. OpenBLAS splits each ``np.dot`` of a slice across its own threads
(the split is part of the result's rounding, so it must stay), and a second thread of ours would compete
with OpenBLAS's worker for the cores, so that every dot waits for the scheduler.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from precdiff.compare.metrics import (
    CACHE_ELEMENTS,
    PairSums,
    Scratch,
    Tolerance,
    accumulate_slice,
    count_unequal,
    finite_sums,
    merge,
)
from precdiff.compare.per_token import TokenPart, TokenSums, square_pairs
from precdiff.store.dtypes import to_float64
from precdiff.store.reader import Capture, TensorInfo


class _Slot(Scratch):
    """One slice: its decoded values, ``|b − a|``, the per-token squares and where it lies (buffers
    reused slice after slice)."""

    def __init__(self, squares: bool) -> None:
        super().__init__()
        self.a = np.empty(CACHE_ELEMENTS)
        self.b = np.empty(CACHE_ELEMENTS)
        self.abs_d = np.empty(CACHE_ELEMENTS)
        self.squares = np.empty(2 * CACHE_ELEMENTS) if squares else None
        self.size = 0
        self.first = 0  # flat position of the slice in the tensor
        self.n_unequal = 0
        self.opens_block = False
        self.closes_block = False
        self.block_is_one_slice = False  # accumulate() returns such a block's only slice unmerged


def measure_pair(
    cap_a: Capture,
    cap_b: Capture,
    info_a: TensorInfo,
    info_b: TensorInfo,
    tolerance: Tolerance,
    tokens: TokenSums | None,
    block_elements: int,
) -> PairSums:
    """The :class:`PairSums` of a stored tensor pair of one shape; adds its per-token sums to ``tokens``.

    Args:
        cap_a, cap_b: the open captures.
        info_a, info_b: the pair (same shape), both stored.
        tolerance: element tolerance for ``n_beyond``.
        tokens: per-token sums to add to (in storage order), or None.
        block_elements: values per block read from each file (the cut points of the blocks).
    """
    slot = _Slot(squares=tokens is not None)
    return _merge(_prepared(cap_a, cap_b, info_a, info_b, block_elements, slot), tolerance, tokens)


def _prepared(
    cap_a: Capture,
    cap_b: Capture,
    info_a: TensorInfo,
    info_b: TensorInfo,
    block_elements: int,
    slot: _Slot,
) -> Iterator[_Slot]:
    """The slices of the pair in storage order, each in ``slot`` (overwritten by the next), filled with
    everything that does not depend on summation order."""
    first = 0
    blocks_b = cap_b.iter_raw_blocks(info_b.name, block_elements, reuse=True)
    for raw_a in cap_a.iter_raw_blocks(info_a.name, block_elements, reuse=True):
        raw_b = next(blocks_b)  # same shape -> same cut points (reader contract)
        size = raw_a.size
        for start in range(0, size, CACHE_ELEMENTS) if size else range(1):  # an empty block still closes
            stop = min(start + CACHE_ELEMENTS, size)
            n = slot.size = stop - start
            slot.first = first + start
            slot.opens_block, slot.closes_block = start == 0, stop == size
            slot.block_is_one_slice = size <= CACHE_ELEMENTS
            a = to_float64(raw_a[start:stop], info_a.dtype, out=slot.a[:n])
            b = to_float64(raw_b[start:stop], info_b.dtype, out=slot.b[:n])
            # Values of a slice with NaN/Inf are thrown away (it takes the masked paths), so its
            # arithmetic is not warned about.
            with np.errstate(over="ignore", invalid="ignore"):
                d = np.subtract(b, a, out=slot.abs_d[:n])
                if slot.squares is not None:
                    square_pairs(a, d, slot.squares)
                np.abs(d, out=d)
            slot.n_unequal = count_unequal(a, b, slot.mask[:n])
            yield slot
        first += size


def _merge(slices: Iterator[_Slot], tolerance: Tolerance, tokens: TokenSums | None) -> PairSums:
    """Sums of every slice, merged in order: slices into their block, blocks into the total."""
    total = block = PairSums()
    for slot in slices:
        if slot.opens_block:
            block = PairSums()
        if slot.size:
            sums, part = _measure(slot, tolerance, tokens)
            if part is not None:
                assert tokens is not None
                tokens.add(part)
            block = sums if slot.block_is_one_slice else merge(block, sums)
        if slot.closes_block:
            total = merge(total, block)
    return total


def _measure(
    slot: _Slot, tolerance: Tolerance, tokens: TokenSums | None
) -> tuple[PairSums, TokenPart | None]:
    """:func:`accumulate_slice` and :meth:`TokenSums.measure` of one prepared slice."""
    n = slot.size
    a, b = slot.a[:n], slot.b[:n]
    squares = float(np.dot(a, a)), float(np.dot(b, b))
    if not (math.isfinite(squares[0]) and math.isfinite(squares[1])):
        # NaN/Inf somewhere (or overflowing squares): the masked paths, as they stand.
        return accumulate_slice(a, b, tolerance), tokens.measure(slot.first, a, b) if tokens else None
    part = None
    if tokens is not None:
        assert slot.squares is not None
        part = tokens.measure(slot.first, a, b, slot.squares[: 2 * n])
    return finite_sums(a, b, tolerance, squares, slot.abs_d[:n], slot.n_unequal, slot), part
