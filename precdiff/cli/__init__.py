"""Command-line interface: a thin Typer veneer over the library (see ``_app.py``).

Importing this package registers every command on :data:`app`.
"""

from __future__ import annotations

from precdiff.cli._app import app, main

__all__ = ["app", "main"]
