"""Quantization sensitivity: which layers must stay in 16-bit float (``precdiff sensitivity``).

Public API::

    from precdiff.sensitivity import find_sensitive_layers, SensitivityOptions
    report = find_sensitive_layers("tiny:llama", "calib.txt", SensitivityOptions(bits=4, verify=True))
    report.flagged, report.sensitive_layers(), report.to_dict()

See ``docs/sensitivity.md`` for the measures, the histogram bins and smoothing, the combined rank of
``--budget`` and the JSON layout.
"""

from __future__ import annotations

from precdiff.sensitivity.analyze import find_sensitive_layers
from precdiff.sensitivity.options import SensitivityOptions
from precdiff.sensitivity.quantizers import QuantScheme, fake_quantize, parse_granularity
from precdiff.sensitivity.results import LayerSensitivity, SensitivityReport, Verification, VerifyRow

__all__ = [
    "LayerSensitivity",
    "QuantScheme",
    "SensitivityOptions",
    "SensitivityReport",
    "Verification",
    "VerifyRow",
    "fake_quantize",
    "find_sensitive_layers",
    "parse_granularity",
]
