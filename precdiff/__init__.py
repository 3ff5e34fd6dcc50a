"""precdiff: cross-hardware precision diff debugger for LLMs.

The public API is what ``__all__`` lists; anything else may change without notice. ``capture`` and
``compare`` here are the functions; their stage packages are still importable with
``from precdiff.compare import metrics`` (but not ``import precdiff.compare.metrics as m``, which
looks ``compare`` up as an attribute of ``precdiff`` and finds the function).
"""

from __future__ import annotations

from precdiff._version import __version__
from precdiff.capture import CaptureResult, save_tiny
from precdiff.capture.runner import capture
from precdiff.compare import CompareOptions, Comparison, TensorComparison, Verdict, summarize_capture
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.errors import (
    CaptureError,
    CaptureFormatError,
    DeviceUnavailableError,
    IncompatibleCaptureError,
    InputError,
    KernelError,
    ModelLoadError,
    NotComparableError,
    PrecdiffError,
    TemplateError,
    TemplateSandboxError,
)
from precdiff.invariance import (
    DeterminismOptions,
    DeterminismReport,
    InvarianceOptions,
    InvarianceReport,
    check_determinism,
    check_invariance,
)
from precdiff.kernels import batch_invariant_mode
from precdiff.sensitivity import SensitivityOptions, SensitivityReport, find_sensitive_layers
from precdiff.store import Capture, open_capture
from precdiff.templates import Rendering, TokensDiff, diff_conversation, render_conversation

__all__ = [
    "Capture",
    "CaptureError",
    "CaptureFormatError",
    "CaptureInput",
    "CaptureOptions",
    "CaptureResult",
    "CompareOptions",
    "Comparison",
    "DeterminismOptions",
    "DeterminismReport",
    "DeviceUnavailableError",
    "IncompatibleCaptureError",
    "InputError",
    "InvarianceOptions",
    "InvarianceReport",
    "KernelError",
    "ModelLoadError",
    "NotComparableError",
    "PrecdiffError",
    "Rendering",
    "SensitivityOptions",
    "SensitivityReport",
    "TemplateError",
    "TemplateSandboxError",
    "TensorComparison",
    "TokensDiff",
    "Verdict",
    "__version__",
    "batch_invariant_mode",
    "capture",
    "check_determinism",
    "check_invariance",
    "compare",
    "diff_conversation",
    "find_sensitive_layers",
    "open_capture",
    "render_conversation",
    "save_tiny",
    "summarize_capture",
]
