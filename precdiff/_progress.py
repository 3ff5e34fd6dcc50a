"""Progress of long library calls, reported to whoever is listening (the CLI's rich display).

Library code marks its long loops with :func:`task`; nothing is shown unless a front end installed a
:class:`Listener` with :func:`listening` (the CLI does, on a terminal and without ``--quiet``). The
library never imports a UI package: this module is the seam between them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, TypeVar

T = TypeVar("T")


class Listener(Protocol):
    """Receives the progress of one task at a time (tasks may nest; the innermost is shown)."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, steps: int) -> None: ...

    def stop(self) -> None: ...


_listener: ContextVar[Listener | None] = ContextVar("precdiff_progress", default=None)


class Task:
    """A running task; :meth:`advance` after each step."""

    def __init__(self, listener: Listener | None):
        self._listener = listener

    def advance(self, steps: int = 1) -> None:
        if self._listener is not None:
            self._listener.advance(steps)


@contextmanager
def task(label: str, total: int | None = None) -> Iterator[Task]:
    """Report a task of ``total`` steps (``None``: unknown) to the installed listener, if any."""
    listener = _listener.get()
    if listener is not None:
        listener.start(label, total)
    try:
        yield Task(listener)
    finally:
        if listener is not None:
            listener.stop()


def iterate(items: Sequence[T], label: str) -> Iterator[T]:
    """Yield ``items``, reporting one step per item as the task ``label``."""
    with task(label, total=len(items)) as running:
        for item in items:
            yield item
            running.advance()


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Install ``listener`` for the calls made inside the block (``None``: report nothing)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
