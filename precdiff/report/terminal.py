"""The console every renderer prints to by default."""

from __future__ import annotations

import os
import sys

from rich.console import Console

# Reports piped to a file or a CI log keep their full tensor names instead of rich's 80-column default.
PIPED_WIDTH = 160


def make_console() -> Console:
    """A rich console on stdout: the terminal's width, or :data:`PIPED_WIDTH` when not a terminal
    (``COLUMNS`` still wins when set)."""
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH
    return Console(highlight=False, width=width, emoji=False)
