"""The Typer application and the single error boundary of the CLI.

Each command module (``capture.py``, ``compare.py``, ``tokens.py``, ``invariance.py``) registers its
commands on :data:`app` with :func:`command`. A command parses options, calls one library function,
hands the result to ``precdiff.report`` and returns the exit code. Only here is
:class:`~precdiff.errors.PrecdiffError` caught: one red line on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import errno
import functools
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from precdiff._version import __version__
from precdiff.errors import PrecdiffError

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3  # a bug in precdiff: traceback shown; never 1, which scripts read as "diverged"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM

# Conditions of the machine, not of precdiff: a write that fails with one of these is a user error.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

# Help shows a value's kind as click-style metavars (PATH, INTEGER); flags show none.
_METAVARS = {Path: "PATH", int: "INTEGER", float: "FLOAT", str: "TEXT"}


_CLICK_TYPE_METAVARS = {"path": "PATH", "integer": "INTEGER", "float": "FLOAT"}


def _type_metavar(param: Any) -> str:
    # Newer Typer keeps the annotation (``type_descriptor``); older releases only the click type, whose
    # name says the same. Both are read defensively: help must never fail on another Typer version.
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is not None:
        element = getattr(annotation, "__args__", (annotation,))[0]
        return _METAVARS.get(element, "TEXT")
    return _CLICK_TYPE_METAVARS.get(str(getattr(getattr(param, "type", None), "name", "")), "TEXT")


def plain_metavar(param: Any) -> None:
    """Give ``param`` the metavar help shows: ``PATH``, ``INTEGER``, … (none for a flag)."""
    if param.metavar is not None:
        return
    if getattr(param, "is_flag", False):
        param.metavar = ""
    elif param.param_type_name == "argument":
        kind = _type_metavar(param)
        param.metavar = param.name.upper()
        # The arguments panel's type column; Typer would print ``<path>``.
        param.display_type_rich = lambda ctx: kind
    else:
        param.metavar = _type_metavar(param)


class _Command(TyperCommand):
    """Typer's command with click-style help: ``--out PATH`` (not ``<path>``), no type on flags,
    ``compare [OPTIONS] A B`` in the usage line (not ``{a} {b}``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        for param in params:
            plain_metavar(param)
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = ["[OPTIONS]"]
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(param.metavar if param.required else f"[{param.metavar}]")
        return pieces


class Group(TyperGroup):
    """Typer's group with the same help conventions as :class:`_Command`."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        for param in params:
            plain_metavar(param)
        return params


app = typer.Typer(
    name="precdiff",
    cls=Group,
    help="Cross-hardware precision diff debugger for LLMs.",
    no_args_is_help=True,
    add_completion=False,
    # A bug's traceback must never dump tensors or model objects as locals.
    pretty_exceptions_show_locals=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"precdiff {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Cross-hardware precision diff debugger for LLMs."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that writers close their files as on Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


# No emoji codes: "tiny:llama:" must not print a llama.
_stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

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
            # Imported here, not at the top: rich.progress is not needed to build --help.
            from precdiff.report.progress import show_progress

            try:
                # Long library calls report progress on stderr unless the command's --quiet is given.
                with show_progress(quiet=bool(kw.get("quiet", False))):
                    code = func(*args, **kw)
            except PrecdiffError as exc:
                fail(exc)
                raise typer.Exit(EXIT_USAGE) from None
            except Terminated:
                _stderr.print("[red]Terminated[/red]: stopped by SIGTERM; outputs were left as they were")
                raise typer.Exit(EXIT_TERMINATED) from None
            except KeyboardInterrupt:
                _stderr.print("[red]Interrupted[/red]: stopped by the user; outputs were left as they were")
                raise typer.Exit(EXIT_INTERRUPTED) from None
            except OSError as exc:
                if exc.errno not in _ENVIRONMENT_ERRNOS:
                    _internal_error()
                detail = exc.strerror or str(exc)
                where = f" ({exc.filename})" if exc.filename else ""
                _stderr.print(
                    f"[red]{type(exc).__name__}[/red]: cannot write{escape(where)}: {escape(detail)}; free "
                    "space or pick another output path; outputs were left as they were"
                )
                raise typer.Exit(EXIT_USAGE) from None
            except Exception:
                _internal_error()
            raise typer.Exit(int(code or 0))

        (parent or app).command(name, cls=_Command, **kwargs)(wrapper)
        return func

    return decorate


# The option of every long command; read by the command wrapper, which shows progress without it.
QUIET = typer.Option(
    False, "--quiet", "-q", help="No progress display on stderr (none is shown off a terminal)."
)


def wrote(path: Path) -> None:
    """Tell the user where a report file went (stderr, so that stdout stays the report)."""
    _stderr.print(f"wrote {escape(str(path))}")


def _internal_error() -> None:
    traceback.print_exc()
    _stderr.print(
        "[red]InternalError[/red]: this is a bug in precdiff, not in your input; please "
        "report it with the traceback above"
    )
    raise typer.Exit(EXIT_INTERNAL) from None


def main() -> None:
    """Console-script entry point: SIGTERM stops a run like Ctrl-C does (files closed, one line, no
    traceback), and a file-size limit makes writes fail with EFBIG instead of killing the process."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        register_commands()
        app()
    except Terminated:
        _stderr.print("[red]Terminated[/red]: stopped by SIGTERM before the command started")
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        _stderr.print("[red]Interrupted[/red]: stopped by the user before the command started")
        sys.exit(EXIT_INTERRUPTED)


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
