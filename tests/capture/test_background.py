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


class _HeldSummaries:
    """SummaryBatch's interface with every summary held back until take_next, batch by batch, as
    when the device runs behind the forward; records when the sink waits."""

    def __init__(self, events: list[str], batch: int) -> None:
        from precdiff.capture.stats import SummaryBatch

        self._real = SummaryBatch(sketches=True)
        self._ready: list[object] = []
        self._events, self._batch = events, batch

    def add(self, tensor: object) -> None:
        self._real.add(tensor)  # type: ignore[arg-type]
        self._ready.append(self._real.take_all())

    def launch_waiting(self) -> None:
        """Nothing waits: the CPU path computes at once."""

    def _joined(self, blocks: list[object]) -> object:
        from precdiff.capture.stats import SummaryBlock

        parts = [np.concatenate([getattr(b, field) for b in blocks]) for field in SummaryBlock._fields]
        return SummaryBlock(*parts)

    def take_ready(self) -> object:
        from precdiff.capture.sketch import WIDTH
        from precdiff.capture.stats import SummaryBlock

        return SummaryBlock(np.zeros((0, 7)), np.zeros((0, WIDTH)), np.zeros(0, dtype=np.uint64))

    def take_next(self) -> object:
        self._events.append("wait")
        out, self._ready = self._ready[: self._batch], self._ready[self._batch :]
        return self._joined(out)


def test_the_final_flush_appends_the_rows_written_so_far_before_each_wait(tmp_path: Path) -> None:
    """At the end of a forward the sink waits for the device batch by batch: before each wait it
    appends the index rows it has written, so that once the device finishes only the last batch's
    rows are left to write; the file holds every row, in order."""
    import torch

    from precdiff.capture.sink import TensorSink
    from precdiff.store import CaptureWriter, open_capture

    events: list[str] = []
    path = tmp_path / "held.h5"
    with CaptureWriter(path) as writer:
        sink = TensorSink(writer, summary=True, device=torch.device("cpu"))
        sink._summaries = _HeldSummaries(events, batch=4)  # type: ignore[assignment]
        real_flush_index = writer.flush_index

        def flush_index() -> None:
            events.append(f"append {writer.buffered_rows}")
            real_flush_index()

        writer.flush_index = flush_index  # type: ignore[method-assign]
        for i in range(10):
            sink(f"m{i}", f"m{i}", "output", torch.full((3,), float(i)))
        sink.flush()
        assert events == ["wait", "append 4", "wait", "append 4", "wait", "append 2"]
        writer.finish()
    with open_capture(path) as cap:
        assert cap.tensor_names() == [f"m{i}" for i in range(10)]
