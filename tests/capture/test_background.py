"""Background writes: in order, errors raised in the caller's thread, the capture file unchanged."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from precdiff.capture.background import BackgroundCalls


def test_calls_run_in_order_on_another_thread() -> None:
    seen: list[tuple[int, str]] = []
    calls = BackgroundCalls(depth=1)
    for i in range(50):
        calls.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    calls.close()
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"precdiff-writer"}


def test_the_first_error_stops_later_calls_and_reaches_the_caller() -> None:
    ran: list[int] = []

    def fail() -> None:
        raise OSError("disk full")

    calls = BackgroundCalls()
    calls.submit(ran.append, 1)
    calls.submit(fail)
    calls.submit(ran.append, 2)
    with pytest.raises(OSError, match="disk full"):
        calls.close()
    assert ran == [1]


def test_full_capture_written_in_the_background_reads_back_exactly(tmp_path: Path) -> None:
    """A full capture (background writes) holds the same tensors, in forward order, as the model's."""
    import torch

    from precdiff.capture.sink import TensorSink
    from precdiff.store import CaptureWriter, open_capture

    tensors = [torch.randn(3, 5, generator=torch.Generator().manual_seed(i)) for i in range(20)]
    path = tmp_path / "bg.h5"
    with CaptureWriter(path) as writer:
        sink = TensorSink(writer, summary=False, device=torch.device("cpu"))
        for i, t in enumerate(tensors):
            sink(f"m{i}", f"m{i}", "output", t)
        sink.flush()
        writer.finish()
    with open_capture(path) as cap:
        names = cap.tensor_names()
        assert names == [f"m{i}" for i in range(20)]
        for i, t in enumerate(tensors):
            np.testing.assert_array_equal(cap.tensor(f"m{i}"), t.numpy())
