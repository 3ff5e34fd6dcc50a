"""Replay one captured module call or aten op in isolation (``precdiff replay``), and write a reproducer.

Stage edges: replay reads captures (store), loads models and reuses the float64 mode and kernel
switches of capture, and measures with compare's metrics and dtype table.
"""

from __future__ import annotations

from precdiff.replay.options import ReplayOptions
from precdiff.replay.results import AS_EXPECTED, COMPUTES_DIFFERENTLY, ReplayResult
from precdiff.replay.runner import replay
from precdiff.replay.verdict import DEPARTURE_RATIO

__all__ = [
    "AS_EXPECTED",
    "COMPUTES_DIFFERENTLY",
    "DEPARTURE_RATIO",
    "ReplayOptions",
    "ReplayResult",
    "replay",
]
