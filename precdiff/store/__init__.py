"""Stage 2 of the data flow: the capture file (format, writer, reader).

:class:`CaptureWriter` is resolved on first use (PEP 562): the writer takes torch tensors, and
commands that only read captures (``compare``, ``inspect``) must not import torch.
"""

from __future__ import annotations

import typing as _typing

from precdiff.store.format import FORMAT_VERSION
from precdiff.store.reader import Capture, Generation, TensorInfo, TopK, open_capture

if _typing.TYPE_CHECKING:
    from precdiff.store.writer import CaptureWriter


def __getattr__(name: str) -> _typing.Any:
    if name == "CaptureWriter":
        from precdiff.store.writer import CaptureWriter

        return CaptureWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FORMAT_VERSION", "Capture", "CaptureWriter", "Generation", "TensorInfo", "TopK", "open_capture"]
