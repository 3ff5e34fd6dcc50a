"""Calls run on one background thread, in order: a full capture's file writes overlap the forward.

A full capture is bound by the disk. Writing tensor k on this thread while the main thread runs the
model up to tensor k+1 and copies it to the host keeps the disk busy: the device-to-host copy, the
device work and the raw write of the bytes (store/rawio.py) run without the GIL; HDF5's metadata
writes hold it. At most ``depth`` calls wait, so the host memory held by tensors on their way to disk
stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None

_Item = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Callable[[], None] | None]


class BackgroundCalls:
    """Run submitted calls on one thread in submission order; the first error stops the rest and is
    raised in the caller's thread at every later :meth:`submit` and at :meth:`close`. A call's ``after``
    runs whether the call ran, failed or was skipped (it gives back what the call held)."""

    def __init__(self, depth: int = 2, name: str = "precdiff-writer"):
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            call, args, kwargs, after = item
            try:
                if self._error is None:
                    call(*args, **kwargs)
            except BaseException as exc:  # handed to the caller's thread, which reports it
                self._error = exc
            finally:
                if after is not None:
                    self._after(after)

    def _after(self, after: Callable[[], None]) -> None:
        try:
            after()
        except BaseException as exc:  # a bug: reported like a failed call
            if self._error is None:
                self._error = exc

    def _raise(self) -> None:
        # Sticky: after a failed write no later call runs (the file would have a gap), and every
        # later submit or close reports the same error.
        if self._error is not None:
            raise self._error

    def submit(
        self, call: Callable[..., Any], /, *args: Any, after: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        """Queue ``call(*args, **kwargs)``, then ``after()``; blocks while ``depth`` calls already wait."""
        self._raise()
        self._queue.put((call, args, kwargs, after))

    def close(self) -> None:
        """Wait for every queued call, stop the thread, and raise the first error of a call."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()
