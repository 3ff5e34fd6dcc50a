"""The streaming pass of ``compare`` over one stored tensor pair: whole-tensor and per-token sums at once.

The pair is read block by block (:meth:`~precdiff.store.reader.Capture.iter_raw_blocks`), and every block
is cut into cache-sized slices (:data:`~precdiff.compare.metrics.CACHE_ELEMENTS`) at the places where
:func:`~precdiff.compare.metrics.accumulate` cuts it. Each slice is decoded to float64 once and measured
once: ``b − a`` is formed once and shared by the whole-tensor sums
(:func:`~precdiff.compare.metrics.finite_sums`) and the per-token sums
(:meth:`~precdiff.compare.per_token.TokenSums.measure`). Slices merge in storage order and in
:func:`accumulate`'s grouping (slices into their block, blocks into the total), so the result is bit
for bit that of ``merge(accumulate(...))`` over the blocks plus the per-token sums slice by slice
(tests/compare/test_streaming_exact.py).

One thread does the work, on purpose: the sums must stay those of ``np.dot`` on each whole slice,
and OpenBLAS splits such a dot across its own threads (the split is part of the result's rounding).
A second thread of ours competes with OpenBLAS's worker for the cores, and every dot then waits for
the scheduler: measured several times slower on 2 cores, not faster.
"""

from __future__ import annotations

import math

import numpy as np

from precdiff.compare.metrics import (
    CACHE_ELEMENTS,
    PairSums,
    Tolerance,
    accumulate_slice,
    finite_sums,
    merge,
)
from precdiff.compare.per_token import TokenPart, TokenSums
from precdiff.store.dtypes import to_float64
from precdiff.store.reader import Capture, TensorInfo


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
    total = PairSums()
    first = 0
    blocks_b = cap_b.iter_raw_blocks(info_b.name, block_elements, reuse=True)
    for raw_a in cap_a.iter_raw_blocks(info_a.name, block_elements, reuse=True):
        raw_b = next(blocks_b)  # same shape -> same cut points (reader contract)
        a, b = to_float64(raw_a, info_a.dtype), to_float64(raw_b, info_b.dtype)
        block = PairSums()
        for start in range(0, a.size, CACHE_ELEMENTS):
            stop = start + CACHE_ELEMENTS
            sums, part = _measure_slice(a[start:stop], b[start:stop], tolerance, tokens, first + start)
            if part is not None:
                assert tokens is not None
                tokens.add(part)
            # accumulate() returns a block of one slice as that slice's sums, unmerged.
            block = sums if a.size <= CACHE_ELEMENTS else merge(block, sums)
        total = merge(total, block)
        first += a.size
    return total


def _measure_slice(
    a: np.ndarray, b: np.ndarray, tolerance: Tolerance, tokens: TokenSums | None, first: int
) -> tuple[PairSums, TokenPart | None]:
    """:func:`accumulate_slice` and :meth:`TokenSums.measure` of one slice, sharing ``b − a``."""
    squares = float(np.dot(a, a)), float(np.dot(b, b))
    if not (math.isfinite(squares[0]) and math.isfinite(squares[1])):
        # NaN/Inf somewhere (or overflowing squares): the masked paths, as they stand.
        return accumulate_slice(a, b, tolerance), tokens.measure(first, a, b) if tokens else None
    d = np.subtract(b, a)
    part = tokens.measure(first, a, b, d) if tokens is not None else None  # reads d before it becomes |d|
    return finite_sums(a, b, tolerance, squares, d), part
