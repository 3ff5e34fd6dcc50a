"""Tensor bytes written beside HDF5: ``os.pwrite`` at the offset HDF5 allocated, and early write-back.

Measured on the H200 machine (benchmarks/results/h200_2026-12-01_session3/diagnosis.txt): h5py's
``create_dataset(data=…)`` of a 58 MB array writes 1.34 GB/s chunked and 2.19 GB/s contiguous, and
holds the GIL meanwhile; ``os.pwrite`` of the same bytes writes 3.94 GB/s without the GIL. So
:class:`~precdiff.store.writer.CaptureWriter` lets HDF5 create a contiguous dataset with its space
allocated at creation (no fill value written) and writes the bytes itself, through a second file
descriptor, at ``dataset.id.get_offset()``. HDF5 never writes into a dataset's allocated space of its
own accord, and the file ends at or beyond the last allocated byte, so the two descriptors never
write the same bytes.

The kernel starts writing dirty pages back only past ``vm.dirty_background_ratio`` (10 % of memory:
12 GB on that machine, more than a whole 8B capture), so without help the disk idles during the
capture and the whole file is written at the final ``fsync``. :class:`RawFile` starts an
``fdatasync`` every :data:`WRITEBACK_BYTES` written, one at a time, on a thread of its own: there
4 GiB written and fsynced took 2.16 s instead of 3.06 s, and a killed capture has most of its data on
the disk. :func:`check_room` refuses a write that the disk or the file-size limit cannot take.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from precdiff.errors import CaptureError

try:
    import resource
except ImportError:  # not on Windows: no file-size limit there
    resource = None  # type: ignore[assignment]

# Room kept free beyond a tensor's bytes for HDF5's metadata writes. HDF5 can crash the process
# (SIGSEGV) when a write fails inside a flush, so running out of space must be caught before writing.
_WRITE_MARGIN = 256 << 10

# Bytes written between two early write-backs: large enough that each fdatasync has a long run of
# pages to write, small enough that the disk starts within a fraction of a second.
WRITEBACK_BYTES = 256 << 20

# Linux writes at most 0x7ffff000 bytes per call; larger tensors loop.
_MAX_PWRITE = 0x7FFFF000

_sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def check_room(path: Path, nbytes: int) -> None:
    """Refuse a write of ``nbytes`` into ``path`` that the file-size limit (``ulimit -f``) or the free
    space of its disk cannot take.

    Raises:
        CaptureError: naming the limit and the fix; the ``.partial`` keeps what was written so far.
    """
    needed = nbytes + _WRITE_MARGIN
    size = path.stat().st_size if path.exists() else 0
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
    if limit not in (-1, getattr(resource, "RLIM_INFINITY", -1)) and size + needed > limit:
        raise CaptureError(
            f"{path} would pass the file-size limit of {limit} bytes (ulimit -f); raise the limit, or "
            f"capture less with --summary / --include; what was written so far is in {path}"
        )
    stats = os.statvfs(path.parent)
    free = stats.f_bavail * stats.f_frsize
    if needed > free:
        raise CaptureError(
            f"the disk holding {path} has {free} bytes free and the next tensor needs {nbytes}; free "
            f"space, pick another --out, or capture less with --summary / --include; what was written "
            f"so far is in {path}"
        )


class RawFile:
    """A write-only descriptor on a capture's ``.partial`` file, beside HDF5's own.

    :meth:`write` may run on the writer thread while :meth:`close` runs on the main thread (an
    interrupted capture): a lock keeps the descriptor open until a write in progress is done, and a
    write after :meth:`close` raises instead of writing to whatever file reuses the number.
    """

    def __init__(self, path: Path, *, writeback_bytes: int = WRITEBACK_BYTES):
        self._fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        self._lock = threading.Lock()
        self.writeback_bytes = writeback_bytes
        self._unsynced = 0
        self._syncing: threading.Thread | None = None
        self._sync_error: OSError | None = None
        self.syncs = 0  # early write-backs started (tests and benchmarks read it)

    @staticmethod
    def available() -> bool:
        """Whether the platform has ``os.pwrite`` (not Windows: there HDF5 writes every byte)."""
        return hasattr(os, "pwrite")

    def write(self, data: np.ndarray, offset: int) -> None:
        """Write ``data``'s bytes (C order) at ``offset``; returns once they are in the page cache."""
        view = np.ascontiguousarray(data).data.cast("B")
        with self._lock:
            if self._fd < 0:
                raise ValueError("write to a closed capture file")
            done = 0
            while done < len(view):
                done += os.pwrite(self._fd, view[done : done + _MAX_PWRITE], offset + done)
        self.written(len(view))

    def written(self, nbytes: int) -> None:
        """Count ``nbytes`` written to the file (by either descriptor); every :attr:`writeback_bytes`
        start an ``fdatasync`` unless one is still running. Raises the error of an earlier one."""
        self._raise()
        self._unsynced += nbytes
        if self._unsynced < self.writeback_bytes or self.writeback_bytes <= 0:
            return
        if self._syncing is not None and self._syncing.is_alive():
            return  # one in flight at a time: the next one starts at the next write after it ends
        with self._lock:
            if self._fd < 0:
                return
            fd = os.dup(self._fd)  # the sync owns this one: close() need not wait for it
        self._unsynced = 0
        self.syncs += 1
        self._syncing = threading.Thread(
            target=self._sync, args=(fd,), name="precdiff-writeback", daemon=True
        )
        self._syncing.start()

    def _sync(self, fd: int) -> None:
        try:
            _sync(fd)
        except OSError as exc:  # reported by the next write or by close(wait=True)
            self._sync_error = exc
        finally:
            os.close(fd)

    def _raise(self) -> None:
        if self._sync_error is not None:
            error, self._sync_error = self._sync_error, None
            raise error

    def close(self, *, wait: bool) -> None:
        """Close the descriptor. ``wait``: also wait for a write-back in flight and raise its error
        (a finished capture); without it (an abort) the write-back finishes on its own."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        if wait:
            if self._syncing is not None:
                self._syncing.join()
            self._raise()
