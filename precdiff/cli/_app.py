"""The Typer application and the single error boundary of the CLI.

Each command module (``capture.py``, ``compare.py``, ``tokens.py``, ``invariance.py``) registers its
commands on :data:`app` with :func:`command`. A command parses options, calls one library function,
hands the result to ``precdiff.report`` and returns the exit code. Only here is
:class:`~precdiff.errors.PrecdiffError` caught: one red line on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from precdiff.errors import PrecdiffError

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3  # a bug in precdiff: traceback shown; never 1, which scripts read as "diverged"

app = typer.Typer(
    name="precdiff",
    help="Cross-hardware precision diff debugger for LLMs.",
    no_args_is_help=True,
    add_completion=False,
    # A bug's traceback must never dump tensors or model objects as locals.
    pretty_exceptions_show_locals=False,
)

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: BaseException) -> None:
    """Print one line for a user error (``ErrorType: message``) on stderr."""
    message = " ".join(str(exc).split())  # always a single line
    _stderr.print(f"[red]{type(exc).__name__}[/red]: {escape(message)}")


def command(name: str | None = None, parent: typer.Typer | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register a CLI command whose ``PrecdiffError`` becomes one line and exit code 2.

    The wrapped function returns its exit code (``0``/``1``/``2``) or ``None`` for 0.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kw: Any) -> None:
            try:
                code = func(*args, **kw)
            except PrecdiffError as exc:
                fail(exc)
                raise typer.Exit(EXIT_USAGE) from None
            except KeyboardInterrupt:
                _stderr.print("[red]Interrupted[/red]: stopped by the user")
                raise typer.Exit(130) from None
            except Exception:
                traceback.print_exc()
                _stderr.print(
                    "[red]InternalError[/red]: this is a bug in precdiff, not in your input; please "
                    "report it with the traceback above"
                )
                raise typer.Exit(EXIT_INTERNAL) from None
            raise typer.Exit(int(code or 0))

        (parent or app).command(name, **kwargs)(wrapper)
        return func

    return decorate


def main() -> None:
    """Console-script entry point."""
    register_commands()
    sys.exit(app())


# Each entry is a module under precdiff/cli whose import registers its commands on ``app``.
COMMAND_MODULES: tuple[str, ...] = (
    "capture",
    "compare",
    "tokens",
    "invariance",
    "tune",
    "engines",
    "evalstat",
    "report",
    "sensitivity",
    "merge",
    "replay",
)


def register_commands() -> typer.Typer:
    """Import every command module (idempotent) and return the app; tests call this too."""
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(f"precdiff.cli.{module}")
    return app
