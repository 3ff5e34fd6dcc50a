"""The rich progress display of long commands, on stderr so that stdout stays the report."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from precdiff import _progress


class RichListener:
    """Shows the innermost running task as a bar (known total) or a spinner (unknown total)."""

    def __init__(self, console: Console):
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._tasks: list[TaskID] = []

    def start(self, label: str, total: int | None) -> None:
        if not self._tasks:
            self._progress.start()
        self._tasks.append(self._progress.add_task(label, total=total))

    def advance(self, steps: int) -> None:
        if self._tasks:
            self._progress.advance(self._tasks[-1], steps)

    def stop(self) -> None:
        if self._tasks:
            self._progress.remove_task(self._tasks.pop())
        if not self._tasks:
            self._progress.stop()


@contextmanager
def show_progress(quiet: bool = False) -> Iterator[None]:
    """Display the progress of the library calls inside the block on stderr, unless ``quiet`` or
    stderr is not a terminal (CI logs and pipes get no control sequences)."""
    enabled = not quiet and sys.stderr.isatty()
    listener = RichListener(Console(stderr=True, emoji=False)) if enabled else None
    with _progress.listening(listener):
        yield
