"""Imports flow one way along the data flow (STYLE.md rule 1), checked by parsing every import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "precdiff"
SHARED = {"errors", "config", "devices", "_version", "_json", "_progress"}

# stage -> stages it may import (besides SHARED). Everything not listed here may import nothing else.
ALLOWED: dict[str, set[str]] = {
    "cli": {
        "capture",
        "store",
        "compare",
        "templates",
        "kernels",
        "report",
        "demo",
        "invariance",
        "engines",
        "evalstat",
        "sensitivity",
        "replay",
    },
    "invariance": {"capture", "kernels"},
    "sensitivity": {"capture"},
    "replay": {"capture", "store", "compare"},
    "demo": {"capture", "compare"},
    "capture": {"store", "templates", "kernels", "engines"},
    "store": set(),
    # capture: only the tiny models' tokenizer, to map an engine's token strings to ids.
    "compare": {"store", "engines", "capture", "templates"},
    "engines": {"store", "templates"},
    "evalstat": set(),
    "templates": {"store"},
    "kernels": set(),
    "report": {
        "capture",
        "compare",
        "templates",
        "store",
        "invariance",
        "kernels",
        "engines",
        "evalstat",
        "sensitivity",
        "replay",
    },
    "errors": set(),
    "config": set(),
    "devices": set(),
    "_version": set(),
    "_json": set(),
    "_progress": set(),
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from its first node seen)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles_between_stages_or_modules() -> None:
    """Folder level (stage → stage) and module level (file → file): the import graph is acyclic."""
    stage_edges: dict[str, set[str]] = {}
    module_edges: dict[str, set[str]] = {}
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        stage = stage_of(path)
        for imported in imported_modules(path):
            if not imported.startswith("precdiff."):
                continue
            target = imported if imported in modules else imported.rsplit(".", 1)[0]
            if target in modules and target != name:
                module_edges.setdefault(name, set()).add(target)
            other = imported.split(".")[1]
            if other != stage and stage not in ("__init__", "__main__"):
                stage_edges.setdefault(stage, set()).add(other)
    # A package's __init__ re-exports its modules; it is not a dependency of them.
    module_edges = {
        src: {dst for dst in dsts if not (modules[dst].name == "__init__.py" and src.startswith(dst + "."))}
        for src, dsts in module_edges.items()
    }
    assert _cycles(stage_edges) == []
    assert _cycles(module_edges) == []
