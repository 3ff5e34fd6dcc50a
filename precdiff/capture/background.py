"""Calls run on one background thread, in order: a full capture's file writes overlap the forward.

A full capture is bound by the disk. Writing tensor k on this thread while the main thread runs the
model up to tensor k+1 and copies it to the host keeps the disk busy: the device-to-host copy and
the device work run without the GIL, the HDF5 write holds it. At most ``depth`` calls wait, so the
host memory held by tensors on their way to disk stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None


class BackgroundCalls:
    """Run submitted calls on one thread in submission order; the first error stops the rest and is
    raised in the caller's thread at the next :meth:`submit` or at :meth:`close`."""

    def __init__(self, depth: int = 2, name: str = "precdiff-writer"):
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None] = (
            queue.Queue(maxsize=depth)
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            call, args, kwargs = item
            if self._error is None:
                try:
                    call(*args, **kwargs)
                except BaseException as exc:  # handed to the caller's thread, which reports it
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Queue ``call(*args, **kwargs)``; blocks while ``depth`` calls already wait."""
        self._raise()
        self._queue.put((call, args, kwargs))

    def close(self) -> None:
        """Wait for every queued call, stop the thread, and raise the first error of a call."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()
