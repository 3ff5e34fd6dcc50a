"""rel-L2 and cosine between two summary captures, estimated from their sketches (capture/sketch.py).

Inputs per side: the CountSketch ``S`` (float64 ``[WIDTH]``), the exact checksum, and the exact L2 norm
of the finite elements (the summary statistics). Estimates:

- ``‖B − A‖² ≈ ‖S(B) − S(A)‖²`` (unbiased; relative standard deviation of the *norm* ≈ ``1/sqrt(2·WIDTH)``,
  4.4 % at WIDTH = 256, for any tensor — see :mod:`precdiff.capture.sketch`);
- rel-L2 ``≈ ‖S(B) − S(A)‖ / ‖A‖`` (``‖A‖`` exact);
- cosine ``≈ 1 − (‖S(B) − S(A)‖² − (‖A‖ − ‖B‖)²) / (2‖A‖‖B‖)`` (the law of cosines, arranged so that
  nothing cancels when the tensors nearly agree), clipped to [−1, 1]; for nearly equal
  tensors (cosine near 1) the relative error of ``1 − cosine`` is that of ``‖B − A‖²`` (≈ 2× the
  norm's), which is what matters there.

Equal checksums mean bitwise-equal tensors: rel-L2 is then exactly 0 and cosine 1, not an estimate.
Conventions follow compare/metrics.py: both zero → rel-L2 0, cosine 1; only A zero → rel-L2 inf; a
non-finite input → NaN. Pure float64 functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SketchEstimate:
    rel_l2: float
    cosine: float
    exact: bool  # True when the checksums prove the tensors bitwise equal


def _norm(values: Sequence[float]) -> float:
    return math.sqrt(math.fsum(v * v for v in values))


def estimate(
    sketch_a: Sequence[float],
    sketch_b: Sequence[float],
    l2_a: float,
    l2_b: float,
    checksum_a: int | None = None,
    checksum_b: int | None = None,
) -> SketchEstimate:
    """Estimated rel-L2 ‖B − A‖/‖A‖ and cosine of A and B from their sketches and exact norms."""
    if checksum_a is not None and checksum_a == checksum_b and len(sketch_a) == len(sketch_b):
        return SketchEstimate(0.0, 1.0, True)
    if len(sketch_a) != len(sketch_b) or not sketch_a:
        raise ValueError(
            f"sketches of different widths ({len(sketch_a)} vs {len(sketch_b)}) cannot be compared"
        )
    values = (*sketch_a, *sketch_b, l2_a, l2_b)
    if not all(math.isfinite(v) for v in values):
        return SketchEstimate(math.nan, math.nan, False)
    diff = _norm([b - a for a, b in zip(sketch_a, sketch_b)])
    if l2_a == 0.0:
        rel = 0.0 if l2_b == 0.0 and diff == 0.0 else math.inf
    else:
        rel = diff / l2_a
    if l2_a == 0.0 or l2_b == 0.0:
        cosine = 1.0 if l2_a == l2_b == 0.0 else 0.0
    else:
        # 1 − cos = (‖d‖² − (‖A‖ − ‖B‖)²) / (2‖A‖‖B‖): no cancellation when the tensors nearly agree.
        one_minus = (diff * diff - (l2_a - l2_b) ** 2) / (2.0 * l2_a * l2_b)
        cosine = max(-1.0, min(1.0, 1.0 - one_minus))
    return SketchEstimate(rel, cosine, False)


def relative_std(width: int) -> float:
    """Relative standard deviation of the estimated ‖B − A‖ (the rel-L2 estimate) for a sketch width."""
    return 1.0 / math.sqrt(2.0 * width)
