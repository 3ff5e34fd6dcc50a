"""Device-to-host copies of full tensors through a bounded pool of reused pinned host buffers.

Measured on the H200 machine (benchmarks/results/h200_2026-12-01_session3/diagnosis.txt): a pageable
``tensor.cpu()`` into fresh host memory copies 1.24 GB/s, and the forward waits for it; a copy into
reused pinned memory issued with ``non_blocking=True`` runs 53 GB/s and does not block the host. So
:class:`HostCopies` copies each full tensor into a buffer of a :class:`HostBufferPool`, records an
event on the tensor's stream after the copy, and hands a :class:`Staged` copy to the writer thread,
which waits for the event, writes the bytes and only then gives the buffer back.

Ordering: the copy is queued on the stream that produced the tensor, before any later kernel of the
forward, so an in-place change of the tensor later in the forward cannot reach the copy; the staged
copy also keeps a reference to the tensor until the copy is done. A buffer is reused only after the
writer released it, i.e. after its bytes were handed to the file. Tensors on other streams than the
current one (user code with side streams) are outside this guarantee, as for any hook.

Accelerator-agnostic through ``torch.Event`` and ``torch.accelerator``: tested on CUDA; the path for
other accelerators (``npu``, ``xpu``) uses the same calls but is untested.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from precdiff.store.dtypes import dtype_code
from precdiff.store.format import STORAGE_DTYPES

# Pinned bytes one capture may hold: an 8B model's largest tensor (the bf16 logits of 2,048 tokens,
# 525 MB, a 1 GiB buffer after rounding) plus room for the next tensors while it is written.
PINNED_BUDGET = 2 << 30
# Smallest buffer: small tensors share a few reused buffers rather than one allocation each.
MIN_BUFFER = 1 << 20


class Waitable(Protocol):
    """What the writer thread waits on before reading a buffer (``torch.Event``)."""

    def synchronize(self) -> None: ...


def buffer_size(nbytes: int) -> int:
    """The capacity allocated for a request: a power of two, at least :data:`MIN_BUFFER`. torch's
    caching host allocator rounds pinned allocations to powers of two anyway, so the pool's byte count
    is what is really pinned."""
    return max(MIN_BUFFER, 1 << max(0, nbytes - 1).bit_length())


class HostBufferPool:
    """Host byte buffers (1-d ``uint8`` tensors) reused across copies, at most ``budget`` bytes held.

    :meth:`acquire` returns a free buffer that fits, or allocates one while the budget allows (first
    dropping free buffers that are too small), or waits for :meth:`release`. A request larger than the
    whole budget waits until no buffer is in use and then has the pool to itself.
    """

    def __init__(self, budget: int, allocate: Callable[[int], torch.Tensor]):
        self.budget = budget
        self._allocate = allocate
        self._free: list[torch.Tensor] = []
        self.held = 0  # bytes of every buffer, free or in use
        self.in_use = 0
        self.allocations = 0
        self._changed = threading.Condition()

    def acquire(self, nbytes: int) -> torch.Tensor:
        """A buffer of at least ``nbytes`` bytes; blocks while the pool is at its budget."""
        size = buffer_size(nbytes)
        with self._changed:
            while True:
                fits = [i for i, b in enumerate(self._free) if b.numel() >= size]
                if fits:  # the smallest that fits (list.remove would compare tensors elementwise)
                    self.in_use += 1
                    return self._free.pop(min(fits, key=lambda i: self._free[i].numel()))
                self._free.sort(key=torch.Tensor.numel)
                while self._free and self.held + size > self.budget:
                    self.held -= self._free.pop(0).numel()
                if self.held + size <= self.budget or self.held == 0:
                    self.held += size
                    self.in_use += 1
                    break
                self._changed.wait()
        try:
            buffer = self._allocate(size)  # outside the lock: pinning takes milliseconds
        except BaseException:
            with self._changed:
                self.held -= size
                self.in_use -= 1
                self._changed.notify_all()
            raise
        self.allocations += 1
        return buffer

    def release(self, buffer: torch.Tensor) -> None:
        """Give ``buffer`` back for reuse (its bytes were written)."""
        with self._changed:
            self._free.append(buffer)
            self.in_use -= 1
            self._changed.notify_all()

    def clear(self) -> None:
        """Drop the free buffers (the capture is over); buffers in use come back as usual."""
        with self._changed:
            self.held -= sum(b.numel() for b in self._free)
            self._free.clear()


class Staged:
    """A tensor's bytes on their way to a host buffer, read on the writer thread."""

    __slots__ = ("_array", "_buffer", "_event", "_pool", "_source")

    def __init__(
        self,
        pool: HostBufferPool,
        buffer: torch.Tensor,
        array: np.ndarray,
        event: Waitable | None,
        source: torch.Tensor,
    ):
        self._pool: HostBufferPool | None = pool
        self._buffer = buffer
        self._array = array
        self._event = event
        self._source: torch.Tensor | None = source  # alive until its copy is done

    def host(self) -> np.ndarray:
        """The tensor in its storage form (C order), once the copy is done; waits for it."""
        assert self._pool is not None, "a staged copy read after its buffer was released"
        if self._event is not None:
            self._event.synchronize()
            self._event = None
        self._source = None
        return self._array

    def release(self) -> None:
        """Give the buffer back to the pool, once; call after the bytes were written (or dropped)."""
        if self._pool is not None:
            if self._event is not None:  # never written: the copy may still be running into it
                self._event.synchronize()
            pool, self._pool, self._source = self._pool, None, None
            pool.release(self._buffer)


def _pinned(size: int) -> torch.Tensor:
    try:
        return torch.empty(size, dtype=torch.uint8, pin_memory=True)
    except RuntimeError:  # no pinned memory to be had: copies into pageable memory are synchronous
        return torch.empty(size, dtype=torch.uint8)


def _record(device: torch.device) -> Waitable:
    """An event after the work queued so far on ``device``'s current stream (where copy_ ran)."""
    event = torch.Event(device=device)
    event.record(torch.accelerator.current_stream(device))
    return event


class HostCopies:
    """Stage tensors of one device type into pooled host buffers.

    Args:
        device_type: the tensors this handles (:meth:`handles`); others take the caller's path.
        budget: bytes of host buffers held at most (:data:`PINNED_BUDGET`).
        allocate: ``size -> uint8 tensor`` (pinned memory by default; tests pass plain memory).
        record: ``device -> event`` recorded after the copy (tests pass a fake, or ``None`` results
            for synchronous copies).
    """

    def __init__(
        self,
        device_type: str,
        *,
        budget: int = PINNED_BUDGET,
        allocate: Callable[[int], torch.Tensor] = _pinned,
        record: Callable[[torch.device], Waitable | None] = _record,
    ):
        self.device_type = device_type
        self.pool = HostBufferPool(budget, allocate)
        self._record = record

    @staticmethod
    def for_device(device: torch.device) -> HostCopies | None:
        """Pinned staging for the current accelerator's tensors; ``None`` for a CPU capture, and for
        MPS (unified memory, no pinned staging to gain)."""
        if device.type in ("cpu", "meta", "mps") or not torch.accelerator.is_available():
            return None
        accelerator = torch.accelerator.current_accelerator()
        if accelerator is None or accelerator.type != device.type:
            return None
        return HostCopies(device.type)

    def handles(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` is staged here (on this device type)."""
        return tensor.device.type == self.device_type

    def stage(self, tensor: torch.Tensor) -> Staged:
        """Queue ``tensor``'s copy into a pooled buffer; blocks only while the pool is exhausted."""
        nbytes = tensor.numel() * tensor.element_size()
        buffer = self.pool.acquire(nbytes)
        try:
            part = buffer[:nbytes]
            part.view(tensor.dtype).view(tensor.shape).copy_(tensor.detach(), non_blocking=True)
            event = self._record(tensor.device)
        except BaseException:
            self.pool.release(buffer)
            raise
        # The storage form of store/dtypes.py: 16-bit floats as their uint16 bit patterns.
        array = part.numpy().view(STORAGE_DTYPES[dtype_code(tensor.dtype)]).reshape(tensor.shape)
        return Staged(self.pool, buffer, array, event, tensor)


def copy_to_host(values: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event]:
    """A CUDA tensor's copy in new pinned host memory, queued without blocking, and the event recorded
    after it (query it, or synchronize on it, before reading the copy)."""
    host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
    host.copy_(values, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done
