"""Strict-JSON helpers shared by every stage's ``to_dict()`` (no NaN/Infinity literals in our JSON)."""

from __future__ import annotations

import math


def json_float(value: float | None) -> float | str | None:
    """A float for strict JSON: non-finite values become ``"nan"``, ``"inf"``, ``"-inf"``."""
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)
