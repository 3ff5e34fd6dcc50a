"""The one way a command writes a report file: checked up front, atomic, never over an input.

Every ``--json`` (compare, inspect, tokens, invariance, determinism, demo) goes through
:func:`write_json`, every ``--html`` through :func:`precdiff.report.html.write_html`, and both check the
path with :func:`check_output_path`, so they all fail the same way: one line naming the path and the fix, and an
existing file at the target is left untouched unless the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from precdiff.errors import InputError

StrPath = str | os.PathLike[str]


def check_output_path(path: StrPath, *, inputs: Iterable[StrPath | None] = (), flag: str = "--json") -> Path:
    """Refuse an output path that cannot be written or that would replace one of the command's inputs.

    Args:
        path: the file the command will write.
        inputs: the command's input files and directories (``None`` entries are skipped). The output
            may not be one of the files, nor an existing file inside one of the directories.
        flag: the option that named ``path``, quoted in the messages.

    Raises:
        InputError: the path is a directory, its folder is missing or is a file, or it names an input.
    """
    target = Path(path)
    if target.is_dir():
        example = target / {"--out": "run.h5", "--html": "report.html"}.get(flag, "report.json")
        raise InputError(f"{flag} {target} is a directory; give a file name such as {example}")
    parent = target.parent
    if not parent.exists():
        blocker = next((p for p in (parent, *parent.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise InputError(f"{flag} {target}: {blocker} is a file, not a folder; pick another path")
        raise InputError(f"output folder {parent} does not exist; create it or pick another {flag}")
    if not parent.is_dir():
        raise InputError(f"{flag} {target}: {parent} is a file, not a folder; pick another path")
    resolved = target.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        inside = source.is_dir() and target.exists() and source in resolved.parents
        if resolved == source or inside:
            raise InputError(
                f"{flag} {target} would overwrite {given}, an input of this command; pick another path"
            )
    return target


def write_text_atomically(text: str, path: StrPath, *, flag: str = "--json") -> Path:
    """Write ``text`` to a sibling temporary file and rename it over ``path``.

    A failure (disk full, file-size limit, read-only folder) removes the temporary file, leaves an
    existing ``path`` as it was and raises :class:`InputError` naming the path.
    """
    target = Path(path)
    temp_name: str | None = None
    try:
        handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        # mkstemp creates the file private (0600); a report is as readable as any file written here.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)
        os.replace(temp_name, target)
        temp_name = None
    except OSError as exc:
        raise InputError(
            f"cannot write {flag} {target}: {exc.strerror or exc}; free space or pick a writable path "
            "(an existing file there was left as it was)"
        ) from None
    finally:
        if temp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
    return target


def write_json(
    document: Any, path: StrPath, *, inputs: Iterable[StrPath | None] = (), flag: str = "--json"
) -> Path:
    """Write ``document`` as strict JSON (no NaN/Infinity literals) to ``path`` and return the path.

    ``inputs`` are the command's input files and folders, which the report must not replace (see
    :func:`check_output_path`); the write itself is atomic (:func:`write_text_atomically`).
    """
    target = check_output_path(path, inputs=inputs, flag=flag)
    text = json.dumps(document, indent=2, allow_nan=False, ensure_ascii=False, default=str) + "\n"
    return write_text_atomically(text, target, flag=flag)
