"""Stage 2 of the data flow: the capture file (format, writer, reader)."""

from __future__ import annotations

from precdiff.store.format import FORMAT_VERSION
from precdiff.store.reader import Capture, Generation, TensorInfo, TopK, open_capture
from precdiff.store.writer import CaptureWriter

__all__ = ["FORMAT_VERSION", "Capture", "CaptureWriter", "Generation", "TensorInfo", "TopK", "open_capture"]
