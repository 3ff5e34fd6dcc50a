"""The layout of the CUDA statistics kernel's per-program partials, and their combination on the host.

One place defines the columns: the Triton kernel (capture/stats_triton.py) is launched with each
column's index taken from :data:`PARTIAL_FIELDS`, and :func:`combine_partials` reads them by name.
Sums are of ``x − shift`` (``shift`` = the tensor's first finite-or-zero element) so that the float32
sum of squares does not cancel when |mean| ≫ std.
"""

from __future__ import annotations

import numpy as np

PARTIAL_FIELDS = (
    "min",
    "max",
    "finite_count",
    "shifted_sum",
    "shifted_sumsq",
    "nan_count",
    "inf_count",
    "shift",
)
COLUMN = {name: index for index, name in enumerate(PARTIAL_FIELDS)}


def combine_partials(partials: np.ndarray) -> list[float]:
    """The seven statistics (store.format.STAT_NAMES order) from partials ``[programs, len(PARTIAL_FIELDS)]``."""
    p = partials.astype(np.float64)
    col = {name: p[:, index] for name, index in COLUMN.items()}
    nan_count, inf_count = float(col["nan_count"].sum()), float(col["inf_count"].sum())
    count = col["finite_count"].sum()
    if count == 0:
        nan = float("nan")
        return [nan, nan, nan, nan, nan, nan_count, inf_count]
    shift = col["shift"][0]
    shifted_sum, shifted_sumsq = col["shifted_sum"].sum(), col["shifted_sumsq"].sum()
    mean = shift + shifted_sum / count
    variance = max(shifted_sumsq / count - (shifted_sum / count) ** 2, 0.0)
    sumsq = shifted_sumsq + 2.0 * shift * shifted_sum + count * shift * shift
    return [
        float(col["min"].min()),
        float(col["max"].max()),
        float(mean),
        float(np.sqrt(variance)),
        float(np.sqrt(max(sumsq, 0.0))),
        nan_count,
        inf_count,
    ]
