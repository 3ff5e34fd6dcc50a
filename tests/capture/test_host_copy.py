"""Pooled host buffers for full tensors (capture/host_copy.py), on the CPU: plain buffers stand in for
pinned ones and a fake event for the device's. The pool's reuse, budget and ordering, the staged
bytes, and the sink's staged path end to end (errors, interrupted captures)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from precdiff.capture.host_copy import MIN_BUFFER, HostBufferPool, HostCopies, buffer_size
from precdiff.capture.sink import TensorSink
from precdiff.store import CaptureWriter, open_capture
from precdiff.store.dtypes import STORABLE_DTYPES, to_storage


def plain(size: int) -> torch.Tensor:
    return torch.empty(size, dtype=torch.uint8)


class FakeEvent:
    """Records whether the writer waited for it."""

    def __init__(self, log: list[str]):
        self.log = log

    def synchronize(self) -> None:
        self.log.append("synchronize")


def host_copies(log: list[str] | None = None, budget: int = 8 * MIN_BUFFER) -> HostCopies:
    """Staging of CPU tensors, as the sink does for an accelerator's."""
    events = log if log is not None else []
    return HostCopies("cpu", budget=budget, allocate=plain, record=lambda device: FakeEvent(events))


def test_buffer_sizes_are_powers_of_two_of_at_least_a_mebibyte() -> None:
    assert [buffer_size(n) for n in (0, 1, MIN_BUFFER, MIN_BUFFER + 1, 5 * MIN_BUFFER)] == [
        MIN_BUFFER,
        MIN_BUFFER,
        MIN_BUFFER,
        2 * MIN_BUFFER,
        8 * MIN_BUFFER,
    ]


def test_released_buffers_are_reused_and_the_smallest_fit_is_taken() -> None:
    pool = HostBufferPool(16 * MIN_BUFFER, plain)
    big, small = pool.acquire(3 * MIN_BUFFER), pool.acquire(10)
    assert (big.numel(), small.numel(), pool.held, pool.in_use) == (
        4 * MIN_BUFFER,
        MIN_BUFFER,
        5 * MIN_BUFFER,
        2,
    )
    pool.release(big)
    pool.release(small)
    assert pool.acquire(100).data_ptr() == small.data_ptr()  # not the larger one
    assert pool.acquire(2 * MIN_BUFFER).data_ptr() == big.data_ptr()
    assert pool.allocations == 2 and pool.in_use == 2


def test_free_buffers_too_small_are_dropped_to_stay_within_the_budget() -> None:
    pool = HostBufferPool(4 * MIN_BUFFER, plain)
    buffers = [pool.acquire(1) for _ in range(4)]
    for b in buffers:
        pool.release(b)
    large = pool.acquire(2 * MIN_BUFFER)  # two of the four small ones make room
    assert large.numel() == 2 * MIN_BUFFER and pool.held == 4 * MIN_BUFFER
    pool.release(large)
    pool.clear()
    assert pool.held == 0


def test_an_exhausted_pool_blocks_until_a_buffer_comes_back() -> None:
    pool = HostBufferPool(2 * MIN_BUFFER, plain)
    first, second = pool.acquire(1), pool.acquire(1)
    got: list[torch.Tensor] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(1)))
    waiter.start()
    waiter.join(timeout=0.2)
    assert waiter.is_alive() and not got  # still waiting: nothing was released
    pool.release(second)
    waiter.join(timeout=60)
    assert got and got[0].data_ptr() == second.data_ptr()
    assert pool.held == 2 * MIN_BUFFER and pool.in_use == 2
    pool.release(first)


def test_a_request_larger_than_the_budget_waits_for_an_idle_pool_then_has_it_alone() -> None:
    pool = HostBufferPool(2 * MIN_BUFFER, plain)
    held = pool.acquire(1)
    spare = pool.acquire(1)
    pool.release(spare)
    got: list[torch.Tensor] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(5 * MIN_BUFFER)))
    waiter.start()
    waiter.join(timeout=0.2)
    assert waiter.is_alive()
    pool.release(held)
    waiter.join(timeout=60)
    assert got[0].numel() == 8 * MIN_BUFFER and pool.held == 8 * MIN_BUFFER and pool.in_use == 1


def test_a_failed_allocation_gives_its_share_of_the_budget_back() -> None:
    def fail(size: int) -> torch.Tensor:
        raise RuntimeError("out of pinned memory")

    pool = HostBufferPool(4 * MIN_BUFFER, fail)
    with pytest.raises(RuntimeError, match="pinned"):
        pool.acquire(1)
    assert pool.held == 0 and pool.in_use == 0


@pytest.mark.parametrize("dtype", sorted(STORABLE_DTYPES, key=str))
@pytest.mark.parametrize("shape", [(), (0,), (5, 0), (7,), (3, 5, 7)])
def test_staged_copies_hold_the_storage_form(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    tensor = (torch.randn(shape, generator=torch.Generator().manual_seed(3)) * 50).to(dtype)
    log: list[str] = []
    copies = host_copies(log)
    staged = copies.stage(tensor)
    assert log == []
    array = staged.host()
    assert log == ["synchronize"]  # the writer waits for the copy before reading the buffer
    expected = to_storage(tensor)
    assert array.dtype == expected.dtype and array.shape == expected.shape
    assert array.tobytes() == expected.tobytes()
    staged.release()
    staged.release()  # once only
    assert copies.pool.in_use == 0


def test_a_staged_copy_is_a_copy_of_a_view_and_outlives_in_place_changes() -> None:
    base = torch.arange(24, dtype=torch.float32).view(4, 6)
    view = base.t()[1:4]  # non-contiguous
    copies = host_copies()
    staged = copies.stage(view)
    expected = view.contiguous().numpy().copy()
    base.add_(100)  # the forward changes the tensor in place after the hook
    np.testing.assert_array_equal(staged.host(), expected)
    staged.release()


def test_an_unread_copy_is_waited_for_before_its_buffer_is_reused() -> None:
    log: list[str] = []
    copies = host_copies(log)
    staged = copies.stage(torch.ones(3))
    staged.release()  # e.g. its write was skipped after an earlier error
    assert log == ["synchronize"] and copies.pool.in_use == 0


def test_handles_only_its_device_type() -> None:
    assert host_copies().handles(torch.ones(1))
    assert not HostCopies("cuda", allocate=plain).handles(torch.ones(1))
    assert HostCopies.for_device(torch.device("cpu")) is None


def capture_tensors(path: Path, tensors: list[torch.Tensor], copies: HostCopies | None) -> None:
    with CaptureWriter(path) as writer:
        sink = TensorSink(writer, summary=False, device=torch.device("cpu"), host_copies=copies)
        for i, t in enumerate(tensors):
            sink(f"m{i}", f"m{i}", "output", t)
        sink.flush()
        writer.finish()


def test_staged_full_capture_equals_the_direct_one(tmp_path: Path) -> None:
    """The sink's staged path (as on an accelerator) and its CPU path store the same file contents;
    at most a few buffers serve the whole capture, and all are back at the end."""
    generator = torch.Generator().manual_seed(0)
    tensors = [
        (torch.randn(3 + i, 70 * i + 1, generator=generator) * 10).to(
            (torch.float32, torch.bfloat16, torch.float16, torch.int64)[i % 4]
        )
        for i in range(24)
    ]
    tensors.append(torch.tensor(2.5))
    copies = host_copies(budget=4 * MIN_BUFFER)
    capture_tensors(tmp_path / "staged.h5", tensors, copies)
    capture_tensors(tmp_path / "direct.h5", tensors, None)
    assert copies.pool.in_use == 0 and copies.pool.held == 0  # cleared by flush
    assert copies.pool.allocations <= 4
    with open_capture(tmp_path / "staged.h5") as a, open_capture(tmp_path / "direct.h5") as b:
        assert a.tensor_names() == b.tensor_names() == [f"m{i}" for i in range(25)]
        for name in a.tensor_names():
            assert a.info(name) == b.info(name)
            assert a.tensor(name).tobytes() == b.tensor(name).tobytes()


def test_a_background_write_error_surfaces_and_every_buffer_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = host_copies(budget=2 * MIN_BUFFER)
    with CaptureWriter(tmp_path / "err.h5") as writer:
        real = writer.write_tensor

        def failing(name: str, **kwargs: object) -> None:
            if name == "m3":
                raise OSError(28, "No space left on device")
            real(name, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(writer, "write_tensor", failing)
        sink = TensorSink(writer, summary=False, device=torch.device("cpu"), host_copies=copies)
        with pytest.raises(OSError, match="No space left"):  # at a later tensor, or at the flush
            for i in range(40):  # more tensors than buffers: the skipped writes give theirs back
                sink(f"m{i}", f"m{i}", "output", torch.full((4, 4), float(i)))
            sink.flush()
        with contextlib.suppress(OSError):  # as the runner keeps what was written on a failure
            sink.flush()
        assert copies.pool.in_use == 0
        writer.abort()
    with open_capture(writer.partial_path) as cap:
        assert cap.tensor_names() == ["m0", "m1", "m2"]


def test_an_exception_mid_forward_leaves_a_readable_partial(tmp_path: Path) -> None:
    """As the capture runner does on a failure: flush what was computed, abort, keep the .partial."""
    path = tmp_path / "run.h5"
    path.write_text("an older output")
    copies = host_copies()
    with pytest.raises(RuntimeError, match="forward failed"), CaptureWriter(path) as writer:
        sink = TensorSink(writer, summary=False, device=torch.device("cpu"), host_copies=copies)
        try:
            for i in range(5):
                sink(f"m{i}", f"m{i}", "output", torch.full((2, 3), float(i)))
            raise RuntimeError("forward failed")
        finally:
            sink.flush()
    assert path.read_text() == "an older output"
    with open_capture(writer.partial_path) as cap:
        assert cap.complete is False
        assert cap.tensor_names() == [f"m{i}" for i in range(5)]
        assert cap.tensor("m4").tolist() == [[4.0] * 3] * 2
