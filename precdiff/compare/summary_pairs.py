"""Tensor pairs that a side holds only as a summary (``--summary``): estimates from sketches, else bounds.

When both captures hold a sketch of the tensor (docs/format.md, "Sketches") and were sketched by the
same method, rel-L2 and cosine are *estimated* from the sketches and the exact norms
(:mod:`precdiff.compare.sketch_estimate`): status ``estimated``, with the estimator's relative
standard deviation; equal checksums prove the tensors bitwise equal (rel-L2 exactly 0, cosine 1).
Otherwise (older captures, a full capture against a summary one) only the norms exist: status
``stats_only`` and rel-L2 is the lower bound ``|‖B‖ − ‖A‖| / ‖A‖``.

Non-finite values: sketches and norms leave NaN/Inf out, so differing NaN/Inf counts make rel-L2 and
cosine NaN (a non-finite mismatch, as in a full comparison); equal counts compare the finite parts.
"""

from __future__ import annotations

import math
from typing import Any

from precdiff.compare.metrics import norm_ratio_bound
from precdiff.compare.results import ESTIMATED, STATS_ONLY, TensorComparison
from precdiff.compare.sketch_estimate import SketchEstimate, estimate, relative_std
from precdiff.store.reader import Capture, TensorInfo


def sketch_estimate(
    cap_a: Capture, cap_b: Capture, a: TensorInfo, b: TensorInfo
) -> tuple[SketchEstimate, int] | None:
    """rel-L2 and cosine of ``b`` against ``a`` from their sketches, and the sketch width; ``None``
    when a side has no sketch of the tensor or the two were sketched by different methods."""
    table_a, table_b = cap_a.sketches, cap_b.sketches
    if table_a is None or table_b is None or table_a.method != table_b.method:
        return None
    sketch_a, sketch_b = cap_a.sketch(a.name), cap_b.sketch(b.name)
    if sketch_a is None or sketch_b is None or sketch_a[0].shape != sketch_b[0].shape:
        return None
    found = estimate(
        sketch_a[0].tolist(),
        sketch_b[0].tolist(),
        a.stats.get("l2", math.nan),
        b.stats.get("l2", math.nan),
        sketch_a[1],
        sketch_b[1],
    )
    return found, len(sketch_a[0])


def summary_rel_l2(cap_a: Capture, cap_b: Capture, a: TensorInfo, b: TensorInfo) -> float:
    """The best rel-L2 the summaries give: the sketch estimate, else the norm-ratio lower bound."""
    found = sketch_estimate(cap_a, cap_b, a, b)
    if found is not None:
        return found[0].rel_l2
    return norm_ratio_bound(a.stats.get("l2", 0.0), b.stats.get("l2", 0.0))


def compare_summaries(
    cap_a: Capture, cap_b: Capture, a: TensorInfo, b: TensorInfo, base: dict[str, Any]
) -> TensorComparison:
    """The comparison of a pair whose values a side did not store (``base``: the common fields)."""
    sa, sb = a.stats, b.stats
    nan_a, nan_b = int(sa.get("nan_count", 0)), int(sb.get("nan_count", 0))
    inf_a, inf_b = int(sa.get("inf_count", 0)), int(sb.get("inf_count", 0))
    counts: dict[str, Any] = dict(
        numel=a.numel,
        nan_a=nan_a,
        nan_b=nan_b,
        inf_a=inf_a,
        inf_b=inf_b,
        # Different counts prove a mismatch; equal counts may still hide one (positions unknown).
        nonfinite_mismatch=abs(nan_a - nan_b) + abs(inf_a - inf_b),
    )
    found = sketch_estimate(cap_a, cap_b, a, b)
    if found is None:
        rel = norm_ratio_bound(sa.get("l2", 0.0), sb.get("l2", 0.0))
        return TensorComparison(**base, **counts, status=STATS_ONLY, rel_l2=rel, exact=sa == sb)
    result, width = found
    mismatch = counts["nonfinite_mismatch"] and not result.exact
    return TensorComparison(
        **base,
        **counts,
        status=ESTIMATED,
        rel_l2=math.nan if mismatch else result.rel_l2,
        cosine=math.nan if mismatch else result.cosine,
        exact=result.exact,
        estimate_rel_std=0.0 if result.exact else relative_std(width),
    )
