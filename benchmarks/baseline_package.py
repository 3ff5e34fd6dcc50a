"""Another revision of precdiff, importable in the same process as this one, for side-by-side benchmarks.

The H200 machine's host speed drifts between processes (up to 2x: benchmarks/results/
h200_2026-12-01_session5/), so two versions timed in two processes cannot be told apart by a few
percent. A copy of the other revision's ``precdiff/`` under the package name ``precdiff_base``
(its imports rewritten) can be imported next to ``precdiff`` and timed in alternating rounds of one
process, under the same host conditions.

    python benchmarks/baseline_package.py b4b5505 .gpuwork/base   # before going to a machine without git
    python benchmarks/capture_overhead.py --baseline .gpuwork/base ...
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

NAME = "precdiff_base"
ROOT = Path(__file__).resolve().parent.parent
# Module references only: `from precdiff.x import`, `from precdiff import`, `import precdiff`, and
# dotted names in strings (lazy-import tables such as precdiff/__init__.py's).
_REFERENCE = re.compile(r"\bprecdiff(?=\.[A-Za-z_]|\s+import\b)|(?<=\bimport )precdiff\b")


def unpack_renamed(revision: str, folder: Path) -> Path:
    """``git archive REVISION precdiff`` as ``folder/precdiff_base``, every module reference renamed;
    returns ``folder`` (the path to put on ``sys.path``). An existing copy there is replaced."""
    target = folder / NAME
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "precdiff"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        if target.exists():
            shutil.rmtree(target)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(Path(tmp) / "precdiff", target)
    for source in target.rglob("*.py"):
        source.write_text(_REFERENCE.sub(NAME, source.read_text()))
    return folder


def load(folder: Path) -> ModuleType:
    """The baseline package unpacked under ``folder`` by :func:`unpack_renamed`, imported."""
    if not (folder / NAME / "__init__.py").is_file():
        raise SystemExit(
            f"{folder} holds no {NAME}/: make it with benchmarks/baseline_package.py REV {folder}"
        )
    sys.path.insert(0, str(folder.resolve()))
    return importlib.import_module(NAME)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revision")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    print(unpack_renamed(args.revision, args.folder) / NAME)


if __name__ == "__main__":
    main()
