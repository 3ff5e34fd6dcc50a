"""precdiff: cross-hardware precision diff debugger for LLMs.

The public API is what ``__all__`` lists; anything else may change without notice. The two main calls
are :func:`run_capture` and :func:`compare_captures`; ``precdiff.capture`` and ``precdiff.compare``
are the stage packages (so ``import precdiff.capture.runner`` works as it reads).
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from precdiff._version import __version__

if _typing.TYPE_CHECKING:
    from precdiff.capture import CaptureResult, save_tiny
    from precdiff.capture.runner import capture as run_capture
    from precdiff.compare import CompareOptions, Comparison, TensorComparison, Verdict
    from precdiff.compare.compare import compare as compare_captures
    from precdiff.config import CaptureInput, CaptureOptions
    from precdiff.engines import engine_request
    from precdiff.errors import (
        CaptureError,
        CaptureFormatError,
        DeviceLimitError,
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

# Public name -> (module, attribute). Resolved on first use (PEP 562) so that ``import precdiff`` and
# ``precdiff --help`` do not import torch and transformers.
_LAZY: dict[str, tuple[str, str]] = {
    "CaptureResult": ("precdiff.capture", "CaptureResult"),
    "save_tiny": ("precdiff.capture", "save_tiny"),
    "run_capture": ("precdiff.capture.runner", "capture"),
    "CompareOptions": ("precdiff.compare", "CompareOptions"),
    "Comparison": ("precdiff.compare", "Comparison"),
    "TensorComparison": ("precdiff.compare", "TensorComparison"),
    "Verdict": ("precdiff.compare", "Verdict"),
    "compare_captures": ("precdiff.compare.compare", "compare"),
    "CaptureInput": ("precdiff.config", "CaptureInput"),
    "CaptureOptions": ("precdiff.config", "CaptureOptions"),
    **{
        name: ("precdiff.errors", name)
        for name in (
            "CaptureError",
            "CaptureFormatError",
            "DeviceUnavailableError",
            "IncompatibleCaptureError",
            "InputError",
            "KernelError",
            "ModelLoadError",
            "NotComparableError",
            "PrecdiffError",
            "TemplateError",
            "TemplateSandboxError",
        )
    },
    **{
        name: ("precdiff.invariance", name)
        for name in (
            "DeterminismOptions",
            "DeterminismReport",
            "InvarianceOptions",
            "InvarianceReport",
            "check_determinism",
            "check_invariance",
        )
    },
    "batch_invariant_mode": ("precdiff.kernels", "batch_invariant_mode"),
    "Capture": ("precdiff.store", "Capture"),
    "open_capture": ("precdiff.store", "open_capture"),
    "summarize_capture": ("precdiff.store.summary", "summarize_capture"),
    **{
        name: ("precdiff.templates", name)
        for name in ("Rendering", "TokensDiff", "diff_conversation", "render_conversation")
    },
    "DeviceLimitError": ("precdiff.errors", "DeviceLimitError"),
    "EngineResponseError": ("precdiff.errors", "EngineResponseError"),
    "EvalResultsError": ("precdiff.errors", "EvalResultsError"),
    "ReplayError": ("precdiff.errors", "ReplayError"),
    "engine_request": ("precdiff.engines", "engine_request"),
    "EvalComparison": ("precdiff.evalstat", "EvalComparison"),
    "EvalstatOptions": ("precdiff.evalstat", "EvalstatOptions"),
    "compare_evals": ("precdiff.evalstat", "evalstat"),
    "ReplayOptions": ("precdiff.replay", "ReplayOptions"),
    "ReplayResult": ("precdiff.replay", "ReplayResult"),
    "replay_module": ("precdiff.replay", "replay"),
    "SensitivityOptions": ("precdiff.sensitivity", "SensitivityOptions"),
    "SensitivityReport": ("precdiff.sensitivity", "SensitivityReport"),
    "find_sensitive_layers": ("precdiff.sensitivity", "find_sensitive_layers"),
}


def __getattr__(name: str) -> _typing.Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'precdiff' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(_importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "DeviceLimitError",
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
