"""The one exception tree of precdiff.

Every error a *user* can cause (bad option, bad file, missing device, two captures that cannot be
compared) is a :class:`PrecdiffError`. The CLI catches exactly this base class, prints one line and
exits with code 2. Anything else is a bug in precdiff and keeps its traceback.

::

    PrecdiffError
    ├── InputError                  bad option value, malformed JSON, unreadable input file
    ├── ModelLoadError              model directory / tiny-model name cannot be loaded
    ├── DeviceUnavailableError      cuda / npu requested but not present (or torch_npu missing)
    ├── CaptureError                the forward pass or the writer failed during a capture
    ├── CaptureFormatError          a file is not a precdiff capture, or is damaged
    │   └── IncompatibleCaptureError    written by an incompatible format version
    ├── NotComparableError          two captures ran different weights or different input tokens
    ├── TemplateError               a chat template failed to render, or a tokenizer spec is bad
    │   └── TemplateSandboxError        a template tried something the sandbox forbids
    ├── KernelError                 batch-invariant kernels cannot be used as requested
    ├── EngineResponseError         a serving engine's response file is malformed or unmappable
    ├── EvalResultsError            an eval run's per-sample file is malformed or of an unknown format
    ├── ReplayError                 a module cannot be replayed (no inputs saved, other weights, …)
    └── DeviceLimitError            the device ran out of memory, or has no kernel for an operation

Messages state what happened, the offending value, and the fix (naming the CLI flag and, where it
differs, the Python keyword).
"""

from __future__ import annotations


class PrecdiffError(Exception):
    """Base of every user-facing precdiff error. Caught only by the CLI (exit code 2)."""


class InputError(PrecdiffError):
    """A command-line option, an input file or an argument of the Python API is invalid."""


class ModelLoadError(PrecdiffError):
    """The model could not be loaded from a directory or built from a ``tiny:<arch>`` name."""


class DeviceUnavailableError(PrecdiffError):
    """The requested device (cuda, npu) is not available on this machine."""


class CaptureError(PrecdiffError):
    """A capture failed while running the model or writing its file."""


class CaptureFormatError(PrecdiffError):
    """A file is not a precdiff capture, or is damaged beyond reading."""


class IncompatibleCaptureError(CaptureFormatError):
    """A capture was written by a format version this precdiff cannot read."""


class NotComparableError(PrecdiffError):
    """Two captures ran different weights or different input tokens; comparing them is meaningless."""


class TemplateError(PrecdiffError):
    """A chat template could not be rendered, or a tokenizer / template specification is invalid."""


class TemplateSandboxError(TemplateError):
    """A chat template attempted an operation the sandbox forbids (internals access, runaway loop)."""


class KernelError(PrecdiffError):
    """Batch-invariant kernels cannot be enabled as requested on this device."""


class EngineResponseError(PrecdiffError):
    """A serving engine's response file is malformed, truncated, of an unknown format, or its tokens
    cannot be mapped to ids exactly."""


class EvalResultsError(PrecdiffError):
    """An eval run's per-sample results file is malformed, truncated or of an unknown format."""


class ReplayError(PrecdiffError):
    """A captured module cannot be replayed: inputs not captured, unknown tensor, other weights."""


class DeviceLimitError(PrecdiffError):
    """The device ran out of memory, or has no kernel for an operation, for the run as asked."""
