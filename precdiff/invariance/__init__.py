"""Batch invariance and determinism probes (``precdiff invariance`` / ``precdiff determinism``).

Public API::

    from precdiff.invariance import check_invariance, InvarianceOptions
    report = check_invariance("tiny:llama", InvarianceOptions(device="cpu", kernels="batch-invariant"))
    bool(report), report.first_non_invariant, report.to_dict()

See ``docs/invariance.md`` and, for the JSON layout, ``docs/invariance-json.md``.
"""

from __future__ import annotations

from precdiff.invariance.determinism import check_determinism
from precdiff.invariance.options import DeterminismOptions, InvarianceOptions, parse_batch_sizes
from precdiff.invariance.probe import check_invariance
from precdiff.invariance.results import DeterminismReport, InvarianceReport, TensorInvariance
from precdiff.invariance.ulp import TensorDiff, bitwise_diff, ulp_distance

__all__ = [
    "DeterminismOptions",
    "DeterminismReport",
    "InvarianceOptions",
    "InvarianceReport",
    "TensorDiff",
    "TensorInvariance",
    "bitwise_diff",
    "check_determinism",
    "check_invariance",
    "parse_batch_sizes",
    "ulp_distance",
]
