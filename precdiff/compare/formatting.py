"""How verdict messages write numbers: one style for rel-L2 values and growth factors everywhere."""

from __future__ import annotations

import math


def fmt_rel(value: float | None) -> str:
    """A rel-L2 in the verdict's style: ``3.1e-05``."""
    return "n/a" if value is None else f"{value:.1e}"


def fmt_growth(value: float | None) -> str:
    """A growth factor in the verdict's style: ``×770``, ``×2.5``, ``×1.2e+05``."""
    if value is None or math.isnan(value):
        return "×?"
    if math.isinf(value):
        return "×inf"
    if value < 10:
        return f"×{value:.1f}"
    return f"×{value:.0f}" if value < 1e4 else f"×{value:.1e}"
