"""Stage 1 of the data flow: run a model under hooks and stream what it computes to a capture file."""

from __future__ import annotations

from precdiff.capture.models import save_tiny
from precdiff.capture.runner import CaptureResult, capture

__all__ = ["CaptureResult", "capture", "save_tiny"]
