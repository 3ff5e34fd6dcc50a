"""Pure float64 metrics of a tensor pair, built from sufficient statistics.

A tensor is compared block by block (a ``[1, 2048, 128256]`` logits tensor is 2 GB in float64), so
the metrics are not computed from arrays but from :class:`PairSums`, a handful of sums that
:func:`accumulate` computes for one pair of blocks and :func:`merge` adds up. The final metric
functions read only a ``PairSums``; thresholds are never applied here (that is ``localize``'s job).

``a`` is the reference (capture A), ``b`` the candidate. Conventions, in code and in
``docs/compare-json.md``:

==========================  ==========  ==========  ========  =========  ============
case                        ``rel_l2``  ``cosine``  max_abs   mean_abs   frac_beyond
==========================  ==========  ==========  ========  =========  ============
empty tensor                0.0         1.0         0.0       0.0        0.0
both all zero               0.0         1.0         0.0       0.0        0.0
reference zero, b nonzero   inf         0.0         ‖b‖∞      mean|b|    as counted
b zero, reference nonzero   1.0         0.0         ‖a‖∞      mean|a|    as counted
mismatched NaN/Inf          nan         nan         nan       nan        counted as beyond
==========================  ==========  ==========  ========  =========  ============

Non-finite values: a position where both sides hold NaN, or both hold the same infinity, is *equal*:
it is left out of the norms and sums (so a model that overflows identically on both sides still
compares by its finite part). Any other position with a non-finite value on either side is a
*mismatch*; one mismatch makes every norm-based metric NaN (the tensor diverged, and no norm can say
by how much) and counts as beyond tolerance. The NaN/Inf counts of each side are always reported.
Values are compared as numbers: ``-0.0`` equals ``0.0`` and NaN payloads are not distinguished.
fp64 inputs above ~1e154 overflow the float64 sums of squares (a documented limitation; captured
dtypes are at most fp32 in practice, whose squares fit easily).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from precdiff.compare.dots import Dot, plain_dot

F64 = NDArray[np.float64]


class Tolerance(NamedTuple):
    """Element tolerance: ``|b - a| > atol + rtol * |a|`` is *beyond* it."""

    rtol: float
    atol: float


EXACT = Tolerance(0.0, 0.0)

# Blocks are processed in slices of this many values (512 KiB per float64 array): the ~10 passes
# over each slice then hit the CPU cache instead of memory, which measured 2-4x faster than
# passing over multi-megabyte blocks (benchmarks/compare_throughput.py).
CACHE_ELEMENTS = 1 << 16


class Scratch:
    """Buffers for one slice of :data:`CACHE_ELEMENTS` values, reused slice after slice by one thread:
    the temporaries of :func:`finite_sums` then stay in the CPU cache instead of being fresh memory."""

    def __init__(self) -> None:
        self.values = np.empty(CACHE_ELEMENTS)
        self.mask = np.empty(CACHE_ELEMENTS, dtype=bool)


@dataclass(frozen=True)
class PairSums:
    """Sufficient statistics of a pair (a, b); merge two with :func:`merge`.

    Sums run over ``n_finite`` positions where both values are finite; counts over all ``n``.
    """

    n: int = 0  # elements seen
    n_finite: int = 0  # positions where both a and b are finite
    sum_aa: float = 0.0  # Σ a²
    sum_bb: float = 0.0  # Σ b²
    sum_ab: float = 0.0  # Σ a·b
    sum_dd: float = 0.0  # Σ (b - a)²  (accumulated directly: no cancellation from Σa² + Σb² - 2Σab)
    sum_abs_d: float = 0.0  # Σ |b - a|
    max_abs_d: float = 0.0  # max |b - a|
    n_unequal: int = 0  # positions where a != b (non-finite mismatches included)
    n_beyond: int = 0  # positions beyond the tolerance (non-finite mismatches included)
    nan_a: int = 0
    nan_b: int = 0
    inf_a: int = 0
    inf_b: int = 0
    nonfinite_mismatch: int = 0  # positions where the NaN/Inf patterns of a and b disagree

    @property
    def exact(self) -> bool:
        """True when every position is equal (bitwise, up to -0.0 == 0.0 and NaN payloads)."""
        return self.n_unequal == 0


def finite_sums(
    a: F64,
    b: F64,
    tolerance: Tolerance,
    squares: tuple[float, float] | None = None,
    abs_d: F64 | None = None,
    n_unequal: int | None = None,
    scratch: Scratch | None = None,
    dot: Dot = plain_dot,
) -> PairSums:
    """Sums of two finite blocks. Vectorised; ``np.dot`` (BLAS) does the products.

    The optional arguments are parts a caller has computed already (:mod:`precdiff.compare.stream`
    prepares them once per slice): ``squares``, Σa² and Σb² (the same ``np.dot``, so the same bits);
    ``abs_d``, ``|b - a|`` (``np.dot(|d|, |d|)`` is ``np.dot(d, d)`` bit for bit: the same products);
    ``n_unequal``, the count of ``a != b``. ``scratch``: buffers for the temporaries. ``dot``: the dot
    product (:func:`precdiff.compare.dots.serial_dots` gives one with ``np.dot``'s bits).
    """
    mask = scratch.mask[: a.size] if scratch is not None else None
    sum_aa, sum_bb = squares if squares is not None else (dot(a, a), dot(b, b))
    d = abs_d if abs_d is not None else np.abs(np.subtract(b, a))
    sum_dd = dot(d, d)
    sum_ab = dot(a, b)
    if n_unequal is None:
        n_unequal = count_unequal(a, b, mask)
    if n_unequal == 0:
        sum_abs = max_abs = 0.0
        n_beyond = 0
    else:
        sum_abs = float(d.sum())
        max_abs = float(d.max())
        limit = np.abs(a, out=scratch.values[: a.size] if scratch is not None else None)
        limit *= tolerance.rtol
        limit += tolerance.atol
        n_beyond = int(np.count_nonzero(np.greater(d, limit, out=mask)))
    return PairSums(
        n=a.size,
        n_finite=a.size,
        sum_aa=sum_aa,
        sum_bb=sum_bb,
        sum_ab=sum_ab,
        sum_dd=sum_dd,
        sum_abs_d=sum_abs,
        max_abs_d=max_abs,
        n_unequal=n_unequal,
        n_beyond=n_beyond,
    )


def count_unequal(a: F64, b: F64, mask: NDArray[np.bool_] | None = None) -> int:
    """Positions where finite ``a`` and ``b`` differ (where ``b - a != 0``): a boolean count is ~3x
    faster than counting the nonzero floats of ``b - a``."""
    return int(np.count_nonzero(np.not_equal(a, b, out=mask)))


def accumulate(a_block: ArrayLike, b_block: ArrayLike, tolerance: Tolerance = EXACT) -> PairSums:
    """The :class:`PairSums` of one pair of blocks (same number of elements; flattened).

    Args:
        a_block: reference values, any shape; converted to float64.
        b_block: candidate values, same number of elements.
        tolerance: element tolerance for ``n_beyond`` (see :mod:`precdiff.compare.tolerances`).

    Example:
        >>> s = accumulate([1.0, 2.0], [1.0, 2.5], Tolerance(1e-3, 0.0))
        >>> (s.n, s.sum_dd, s.n_beyond)
        (2, 0.25, 1)
    """
    a = np.asarray(a_block, dtype=np.float64).reshape(-1)
    b = np.asarray(b_block, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"blocks differ in size: {a.size} vs {b.size}")  # a caller bug, not user input
    if a.size <= CACHE_ELEMENTS:
        return accumulate_slice(a, b, tolerance)
    total = PairSums()
    for start in range(0, a.size, CACHE_ELEMENTS):
        stop = start + CACHE_ELEMENTS
        total = merge(total, accumulate_slice(a[start:stop], b[start:stop], tolerance))
    return total


def accumulate_slice(a: F64, b: F64, tolerance: Tolerance, dot: Dot = plain_dot) -> PairSums:
    """:func:`accumulate` of a block small enough for the CPU cache (``dot`` as in :func:`finite_sums`)."""
    if a.size == 0:
        return PairSums()
    # Fast path: finite squared norms prove there is no NaN/Inf, so no masks are needed.
    squares = dot(a, a), dot(b, b)
    if math.isfinite(squares[0]) and math.isfinite(squares[1]):
        return finite_sums(a, b, tolerance, squares, dot=dot)
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    both = finite_a & finite_b
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    neither = ~finite_a & ~finite_b
    # Equal non-finite: NaN on both sides, or the same infinity on both sides.
    same = neither & ((nan_a & nan_b) | (a == b))
    mismatch = int(a.size - np.count_nonzero(both) - np.count_nonzero(same))
    sums = finite_sums(a[both], b[both], tolerance, dot=dot)
    return replace(
        sums,
        n=a.size,
        n_unequal=sums.n_unequal + mismatch,
        n_beyond=sums.n_beyond + mismatch,
        nan_a=int(np.count_nonzero(nan_a)),
        nan_b=int(np.count_nonzero(nan_b)),
        inf_a=int(np.count_nonzero(~finite_a & ~nan_a)),
        inf_b=int(np.count_nonzero(~finite_b & ~nan_b)),
        nonfinite_mismatch=mismatch,
    )


def merge(x: PairSums, y: PairSums) -> PairSums:
    """The sums of the concatenation of two blocks' data."""
    return PairSums(
        n=x.n + y.n,
        n_finite=x.n_finite + y.n_finite,
        sum_aa=x.sum_aa + y.sum_aa,
        sum_bb=x.sum_bb + y.sum_bb,
        sum_ab=x.sum_ab + y.sum_ab,
        sum_dd=x.sum_dd + y.sum_dd,
        sum_abs_d=x.sum_abs_d + y.sum_abs_d,
        max_abs_d=max(x.max_abs_d, y.max_abs_d),
        n_unequal=x.n_unequal + y.n_unequal,
        n_beyond=x.n_beyond + y.n_beyond,
        nan_a=x.nan_a + y.nan_a,
        nan_b=x.nan_b + y.nan_b,
        inf_a=x.inf_a + y.inf_a,
        inf_b=x.inf_b + y.inf_b,
        nonfinite_mismatch=x.nonfinite_mismatch + y.nonfinite_mismatch,
    )


# --- final metrics -------------------------------------------------------------------------------


def rel_l2(s: PairSums) -> float:
    """‖b − a‖₂ / ‖a‖₂. Both zero → 0; reference zero, b not → inf; non-finite mismatch → nan."""
    if s.nonfinite_mismatch:
        return math.nan
    if s.sum_aa == 0.0:
        return 0.0 if s.sum_dd == 0.0 else math.inf
    return math.sqrt(s.sum_dd / s.sum_aa)


def cosine(s: PairSums) -> float:
    """a·b / (‖a‖‖b‖), clipped to [-1, 1]. Both zero → 1; one zero → 0; non-finite mismatch → nan."""
    if s.nonfinite_mismatch:
        return math.nan
    if (s.sum_aa == 0.0 and s.sum_bb == 0.0) or s.n_unequal == 0:
        return 1.0  # identical data is exactly 1, not 1 - rounding of the division
    if s.sum_aa == 0.0 or s.sum_bb == 0.0:
        return 0.0
    # Product of square roots, not the root of the product: Σa²·Σb² can overflow where each fits.
    return max(-1.0, min(1.0, s.sum_ab / (math.sqrt(s.sum_aa) * math.sqrt(s.sum_bb))))


def max_abs(s: PairSums) -> float:
    """max |b − a| over finite positions; 0 when empty; nan on a non-finite mismatch."""
    return math.nan if s.nonfinite_mismatch else s.max_abs_d


def mean_abs(s: PairSums) -> float:
    """mean |b − a| over finite positions; 0 when empty; nan on a non-finite mismatch."""
    if s.nonfinite_mismatch:
        return math.nan
    return s.sum_abs_d / s.n_finite if s.n_finite else 0.0


def frac_beyond(s: PairSums) -> float:
    """Share of all elements beyond the tolerance (mismatched NaN/Inf count as beyond); 0 when empty."""
    return s.n_beyond / s.n if s.n else 0.0


def norm_ratio_bound(l2_a: float, l2_b: float) -> float:
    """|‖b‖ − ‖a‖| / ‖a‖: a *lower bound* on rel-L2 (triangle inequality), from norms alone.

    Used for summary-only captures, which store each tensor's L2 norm but not its values.
    Same zero conventions as :func:`rel_l2`; nan if either norm is not finite.
    """
    if not (math.isfinite(l2_a) and math.isfinite(l2_b)):
        return math.nan
    if l2_a == 0.0:
        return 0.0 if l2_b == 0.0 else math.inf
    return abs(l2_b - l2_a) / l2_a


# --- one-shot conveniences on whole arrays --------------------------------------------------------


def rel_l2_of(a: ArrayLike, b: ArrayLike) -> float:
    """‖b − a‖₂ / ‖a‖₂ of whole arrays; ``a`` is the reference. Conventions as :func:`rel_l2`."""
    return rel_l2(accumulate(a, b))


def cosine_of(a: ArrayLike, b: ArrayLike) -> float:
    """Cosine similarity of whole arrays. Conventions as :func:`cosine`."""
    return cosine(accumulate(a, b))


def max_abs_of(a: ArrayLike, b: ArrayLike) -> float:
    """max |b − a| of whole arrays. Conventions as :func:`max_abs`."""
    return max_abs(accumulate(a, b))


def frac_beyond_of(a: ArrayLike, b: ArrayLike, tolerance: Tolerance) -> float:
    """Share of elements with ``|b − a| > atol + rtol·|a|`` in whole arrays."""
    return frac_beyond(accumulate(a, b, tolerance))
