"""precdiff: cross-hardware precision diff debugger for LLMs.

The public API is what ``__all__`` lists; anything else may change without notice. The two main calls
are :func:`run_capture` and :func:`compare_captures`; ``precdiff.capture`` and ``precdiff.compare``
are the stage packages (so ``import precdiff.capture.runner`` works as it reads); likewise
:func:`compare_evals` and the ``precdiff.evalstat`` package.
"""

from __future__ import annotations

from precdiff._version import __version__
from precdiff.capture import CaptureResult, save_tiny
from precdiff.capture.runner import capture as run_capture
from precdiff.compare import CompareOptions, Comparison, TensorComparison, Verdict
from precdiff.compare.compare import compare as compare_captures
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.engines import engine_request
from precdiff.errors import (
    CaptureError,
    CaptureFormatError,
    DeviceUnavailableError,
    EngineResponseError,
    EvalResultsError,
    IncompatibleCaptureError,
    InputError,
    KernelError,
    ModelLoadError,
    NotComparableError,
    PrecdiffError,
    ReplayError,
    TemplateError,
    TemplateSandboxError,
)
from precdiff.evalstat import EvalComparison, EvalstatOptions
from precdiff.evalstat import evalstat as compare_evals
from precdiff.invariance import (
    DeterminismOptions,
    DeterminismReport,
    InvarianceOptions,
    InvarianceReport,
    check_determinism,
    check_invariance,
)
from precdiff.kernels import batch_invariant_mode
from precdiff.replay import ReplayOptions, ReplayResult
from precdiff.replay import replay as replay_module
from precdiff.sensitivity import SensitivityOptions, SensitivityReport, find_sensitive_layers
from precdiff.store import Capture, open_capture
from precdiff.store.summary import summarize_capture
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
    "EngineResponseError",
    "EvalComparison",
    "EvalResultsError",
    "EvalstatOptions",
    "IncompatibleCaptureError",
    "InputError",
    "InvarianceOptions",
    "InvarianceReport",
    "KernelError",
    "ModelLoadError",
    "NotComparableError",
    "PrecdiffError",
    "Rendering",
    "ReplayError",
    "ReplayOptions",
    "ReplayResult",
    "SensitivityOptions",
    "SensitivityReport",
    "TemplateError",
    "TemplateSandboxError",
    "TensorComparison",
    "TokensDiff",
    "Verdict",
    "__version__",
    "batch_invariant_mode",
    "check_determinism",
    "check_invariance",
    "compare_captures",
    "compare_evals",
    "diff_conversation",
    "engine_request",
    "find_sensitive_layers",
    "open_capture",
    "render_conversation",
    "replay_module",
    "run_capture",
    "save_tiny",
    "summarize_capture",
]
