"""Imports flow one way along the data flow (STYLE.md rule 1), checked by parsing every import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "precdiff"
SHARED = {"errors", "config", "devices", "_version"}

# stage -> stages it may import (besides SHARED). Everything not listed here may import nothing else.
ALLOWED: dict[str, set[str]] = {
    "cli": {
        "capture",
        "store",
        "compare",
        "localize",
        "templates",
        "kernels",
        "report",
        "demo",
        "invariance",
        "sensitivity",
    },
    "invariance": {"capture", "kernels"},
    "sensitivity": {"capture"},
    "demo": {"capture", "compare"},
    "capture": {"store", "templates", "kernels"},
    "store": set(),
    "compare": {"store", "localize"},
    "localize": {"compare"},
    "templates": {"store"},
    "kernels": set(),
    "report": {"capture", "compare", "localize", "templates", "store", "invariance", "sensitivity"},
    "errors": set(),
    "config": set(),
    "devices": set(),
    "_version": set(),
    "__init__": {"*"},
    "__main__": {"cli"},
}
UI_LIBRARIES = {"typer", "rich"}


def stage_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_stages_import_only_allowed_stages() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        stage = stage_of(path)
        allowed = ALLOWED[stage]
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] in UI_LIBRARIES and stage not in ("cli", "report"):
                violations.append(
                    f"{path.relative_to(PACKAGE)} imports {module} (UI only in cli/ and report/)"
                )
            if parts[0] != "precdiff" or len(parts) == 1:
                continue
            target = parts[1]
            if target == stage or target in SHARED or "*" in allowed or target in allowed:
                continue
            violations.append(f"{path.relative_to(PACKAGE)} ({stage}) imports {module}")
    assert violations == []


def test_nothing_imports_the_cli() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if stage_of(p) not in ("cli", "__main__")
        and any(m.startswith("precdiff.cli") for m in imported_modules(p))
    ]
    assert offenders == []


def test_import_precdiff_imports_no_optional_backend() -> None:
    code = (
        "import sys, precdiff, precdiff.cli; "
        "bad = [m for m in ('torch_npu', 'triton') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
