"""Progress goes to a rich display on a terminal, and nowhere when stderr is not one or with --quiet."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from precdiff import _progress
from precdiff.report.progress import RichListener, show_progress


def test_nested_tasks_render_and_finish() -> None:
    buffer = io.StringIO()
    with _progress.listening(RichListener(Console(file=buffer, force_terminal=True, width=80))):
        with _progress.task("capture tiny:llama"):
            assert list(_progress.iterate([1, 2, 3], "compare: tensors")) == [1, 2, 3]
        assert list(_progress.iterate(range(2), "determinism: runs")) == [0, 1]
    assert "compare: tensors" in buffer.getvalue() or "determinism: runs" in buffer.getvalue()


def test_no_listener_off_a_terminal_or_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    with show_progress():
        assert _progress._listener.get() is None
    with show_progress(quiet=True):
        assert _progress._listener.get() is None
    assert list(_progress.iterate([1, 2], "silent")) == [1, 2]  # no listener: the loop still runs
