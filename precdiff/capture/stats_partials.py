"""The statistics partials of the CUDA summary kernel, and how the host finishes them.

capture/summary_triton.py reduces each tensor's per-program partials on the device to one row of
:data:`PARTIAL_FIELDS`; :func:`finish_partials` turns a batch of such rows into the seven statistics
in float64, vectorised. Sums are of ``x − shift`` (``shift`` = the tensor's first element, 0 if not
finite) so that the sum of squares does not cancel when |mean| ≫ std. No torch or Triton here: the
host side is tested on any machine.
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


def finish_partials(rows: np.ndarray) -> np.ndarray:
    """The seven statistics (store.format.STAT_NAMES order) of each row ``[k, len(PARTIAL_FIELDS)]``;
    min / max / mean / std / l2 are NaN for a tensor without a finite element."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(PARTIAL_FIELDS))
    lo, hi, count, total, squares, nans, infs, shift = rows.T
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_shifted = total / count
        mean = shift + mean_shifted
        std = np.sqrt(np.maximum(squares / count - mean_shifted**2, 0.0))
        l2 = np.sqrt(np.maximum(squares + 2.0 * shift * total + count * shift * shift, 0.0))
    out = np.stack([lo, hi, mean, std, l2, nans, infs], axis=1)
    out[count == 0, :5] = np.nan
    return out
