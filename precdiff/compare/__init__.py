"""Stages align → metrics (and, through :mod:`precdiff.compare.localize`, the verdict) of the data flow.

``compare(a, b, options=...)`` lives in :mod:`precdiff.compare.compare`; it is not re-exported
here so that ``precdiff.compare.compare`` keeps naming the module (import the function from there,
or from ``precdiff``).
"""

from __future__ import annotations

from precdiff.compare.options import CompareOptions
from precdiff.compare.results import (
    Comparison,
    Difference,
    GenerationComparison,
    LayerSummary,
    LogprobComparison,
    TensorComparison,
    Verdict,
)

__all__ = [
    "CaptureSummary",
    "CompareOptions",
    "Comparison",
    "Difference",
    "GenerationComparison",
    "LayerSummary",
    "LogprobComparison",
    "TensorComparison",
    "Verdict",
]
