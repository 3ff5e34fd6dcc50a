"""The streaming pass of ``compare`` over one stored tensor pair: whole-tensor and per-token sums at once.

The pair is read block by block (:meth:`~precdiff.store.reader.Capture.iter_raw_blocks`), and every block
is cut into cache-sized slices (:data:`~precdiff.compare.metrics.CACHE_ELEMENTS`) at the places where
:func:`~precdiff.compare.metrics.accumulate` cuts it. Each slice is decoded to float64 once into reused
buffers, and ``b − a`` is formed once for both the whole-tensor sums
(:func:`~precdiff.compare.metrics.finite_sums`) and the per-token sums
(:meth:`~precdiff.compare.per_token.TokenSums.measure`).

The sums stay those of the plain algorithms: the same dot products on the same slices, the per-token
sums in storage order, and the merge in :func:`accumulate`'s grouping (slices into their block, blocks
into the total). So the result is bit for bit that of ``merge(accumulate(...))`` over the blocks plus
the per-token sums slice by slice (tests/compare/test_streaming_exact.py). Element-wise work whose
result does not depend on summation order (``|b − a|``, the squares, the count of unequal values) is
free to move, and it is done once per slice into buffers that stay in the CPU cache.

Slices are measured by a few threads of ours at once (numpy releases the GIL in its loops), each with
its own buffers, and their sums are merged in storage order by the calling thread, so the thread count
never shows in the result. The dot products then run on one BLAS thread each, with the bits of numpy's
threaded BLAS (:func:`~precdiff.compare.dots.serial_dots`); where those bits cannot be had that way,
one thread does it all, with ``np.dot`` splitting each dot over BLAS's threads as before.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from precdiff.compare.dots import Dot, plain_dot, serial_dots
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

# Threads measuring slices at once, at most (one per available core up to this): past a few, the
# calling thread's in-order merge and the memory bandwidth limit the gain.
MAX_WORKERS = 4
# Slices per task handed to a thread: enough work (~2 ms) that handing it over costs little, few enough
# that the threads finish a tensor together.
SLICES_PER_TASK = 4


class _Buffers(Scratch):
    """One thread's buffers for a slice: decoded values, ``|b − a|`` and the per-token squares."""

    def __init__(self, squares: bool) -> None:
        super().__init__()
        self.a = np.empty(CACHE_ELEMENTS)
        self.b = np.empty(CACHE_ELEMENTS)
        self.abs_d = np.empty(CACHE_ELEMENTS)
        self.squares = np.empty(2 * CACHE_ELEMENTS) if squares else None


class _Task(NamedTuple):
    """Consecutive slices ``start … stop`` of one pair of blocks (``first``: the block's flat position)."""

    raw_a: np.ndarray
    raw_b: np.ndarray
    first: int
    start: int
    stop: int


class _Slice(NamedTuple):
    """One slice's sums and where it lies in its block."""

    sums: PairSums | None  # None for the empty slice of an empty block
    part: TokenPart | None
    opens_block: bool
    closes_block: bool
    block_is_one_slice: bool  # accumulate() returns such a block's only slice unmerged


class _Pass:
    """What every slice of one tensor pair is measured with."""

    def __init__(
        self, info_a: TensorInfo, info_b: TensorInfo, tolerance: Tolerance, tokens: TokenSums | None, dot: Dot
    ) -> None:
        self.codes = info_a.dtype, info_b.dtype
        self.tolerance, self.tokens, self.dot = tolerance, tokens, dot
        self.errors = np.geterr()  # the caller's floating-point error handling, for every thread
        self._local = threading.local()

    def buffers(self) -> _Buffers:
        """The calling thread's buffers (made on its first slice)."""
        buffers: _Buffers | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = _Buffers(squares=self.tokens is not None)
        return buffers

    def run(self, task: _Task) -> list[_Slice]:
        """The slices of ``task``, in order."""
        buffers, size, out = self.buffers(), task.raw_a.size, []
        with np.errstate(**self.errors):
            for start in range(task.start, task.stop, CACHE_ELEMENTS) if size else range(1):
                stop = min(start + CACHE_ELEMENTS, size)
                sums, part = self._measure(task, start, stop, buffers) if stop > start else (None, None)
                out.append(_Slice(sums, part, start == 0, stop == size, size <= CACHE_ELEMENTS))
        return out

    def _measure(
        self, task: _Task, start: int, stop: int, buf: _Buffers
    ) -> tuple[PairSums, TokenPart | None]:
        """:func:`accumulate_slice` and :meth:`TokenSums.measure` of one slice, fused."""
        n, first, tokens = stop - start, task.first + start, self.tokens
        a = to_float64(task.raw_a[start:stop], self.codes[0], out=buf.a[:n])
        b = to_float64(task.raw_b[start:stop], self.codes[1], out=buf.b[:n])
        squares = self.dot(a, a), self.dot(b, b)
        if not (math.isfinite(squares[0]) and math.isfinite(squares[1])):
            # NaN/Inf somewhere (or overflowing squares): the masked paths, as they stand.
            sums = accumulate_slice(a, b, self.tolerance, self.dot)
            return sums, tokens.measure(first, a, b) if tokens is not None else None
        part = None
        # Finite a² and b² sums still allow b − a or (b − a)² to overflow (|a|, |b| near 1e154): the
        # per-token sums then take their masked path, and the whole-tensor ones report the infinity.
        with np.errstate(over="ignore", invalid="ignore"):
            d = np.subtract(b, a, out=buf.abs_d[:n])
            if tokens is not None:
                assert buf.squares is not None
                part = tokens.measure(first, a, b, square_pairs(a, d, buf.squares))
            np.abs(d, out=d)
        n_unequal = count_unequal(a, b, buf.mask[:n])
        return finite_sums(a, b, self.tolerance, squares, d, n_unequal, buf, self.dot), part


def measure_pair(
    cap_a: Capture,
    cap_b: Capture,
    info_a: TensorInfo,
    info_b: TensorInfo,
    tolerance: Tolerance,
    tokens: TokenSums | None,
    block_elements: int,
    workers: int | None = None,
) -> PairSums:
    """The :class:`PairSums` of a stored tensor pair of one shape; adds its per-token sums to ``tokens``.

    Args:
        cap_a, cap_b: the open captures.
        info_a, info_b: the pair (same shape), both stored.
        tolerance: element tolerance for ``n_beyond``.
        tokens: per-token sums to add to (in storage order), or None.
        block_elements: values per block read from each file (the cut points of the blocks).
        workers: threads measuring slices; None: one per available core, up to :data:`MAX_WORKERS`.
            The result does not depend on it.
    """
    with serial_dots() as dot:
        if workers is None:
            workers = min(MAX_WORKERS, _cores()) if dot is not None else 1
        measure = _Pass(info_a, info_b, tolerance, tokens, dot or plain_dot)
        # A reused read buffer is overwritten by the next block while threads may still read it.
        tasks = _tasks(cap_a, cap_b, info_a, info_b, block_elements, reuse=workers <= 1)
        if workers <= 1:
            return _merge((s for task in tasks for s in measure.run(task)), tokens)
        with ThreadPoolExecutor(workers, thread_name_prefix="precdiff-compare") as pool:
            return _merge(_in_order(pool, measure, tasks, 2 * workers), tokens)


def _cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _tasks(
    cap_a: Capture, cap_b: Capture, info_a: TensorInfo, info_b: TensorInfo, block_elements: int, reuse: bool
) -> Iterator[_Task]:
    """The pair's blocks in storage order, cut into tasks of :data:`SLICES_PER_TASK` slices."""
    first = 0
    blocks_b = cap_b.iter_raw_blocks(info_b.name, block_elements, reuse=reuse)
    for raw_a in cap_a.iter_raw_blocks(info_a.name, block_elements, reuse=reuse):
        raw_b = next(blocks_b)  # same shape -> same cut points (reader contract)
        size, step = raw_a.size, SLICES_PER_TASK * CACHE_ELEMENTS
        for start in range(0, size, step) if size else range(1):  # an empty block still closes
            yield _Task(raw_a, raw_b, first, start, min(start + step, size))
        first += size


def _in_order(
    pool: ThreadPoolExecutor, measure: _Pass, tasks: Iterator[_Task], ahead: int
) -> Iterator[_Slice]:
    """The slices of ``tasks`` measured in ``pool``, in order, with at most ``ahead`` tasks in flight."""
    pending: deque[Future[list[_Slice]]] = deque()
    for task in tasks:
        pending.append(pool.submit(measure.run, task))
        if len(pending) >= ahead:
            yield from pending.popleft().result()
    while pending:
        yield from pending.popleft().result()


def _merge(slices: Iterator[_Slice], tokens: TokenSums | None) -> PairSums:
    """Sums of every slice, merged in order: slices into their block, blocks into the total."""
    total = block = PairSums()
    for piece in slices:
        if piece.opens_block:
            block = PairSums()
        if piece.sums is not None:
            if piece.part is not None:
                assert tokens is not None
                tokens.add(piece.part)
            block = piece.sums if piece.block_is_one_slice else merge(block, piece.sums)
        if piece.closes_block:
            total = merge(total, block)
    return total
