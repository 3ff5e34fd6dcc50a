"""Summary-only copies of captures, for tests of what ``compare`` concludes from summaries alone.

A capture made with ``summary=True, focus=(ANY,)`` holds every tensor in full *and* the summary sketch
and checksum the capture computed for it; :func:`summary_only` copies it without the data, which leaves
exactly what a ``--summary`` capture of the same run holds (index rows with statistics, sketches and
checksums). One capture then serves both the full and the summary-only comparison of a test.
Imported as ``from summaries import ...`` (``tests/`` is on ``sys.path`` through its conftest).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py

from precdiff.store import format as fmt

ANY = ""  # a focus regex that matches every tensor name


def summary_only(source: Path, target: Path) -> Path:
    """Copy capture ``source`` to ``target`` without any tensor data (``stored`` false everywhere)."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as handle:
        assert fmt.SKETCHES in handle, f"{source} has no sketches: capture it with summary=True"
        del handle[fmt.TENSORS_GROUP]
        rows = handle[fmt.TENSOR_INDEX][()]
        rows[fmt.T_STORED] = False
        handle[fmt.TENSOR_INDEX][...] = rows
    return target
