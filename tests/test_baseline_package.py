"""benchmarks/baseline_package.py: the copy of another revision imports none of this tree's modules,
so that a side-by-side benchmark times two versions, not one twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_renamed_copy_imports_only_itself(tmp_path: Path) -> None:
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("needs the repository's git history")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import baseline_package
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    folder = baseline_package.unpack_renamed("HEAD", tmp_path)
    probe = (
        "import importlib, pkgutil, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "import precdiff_base\n"
        "for module in pkgutil.walk_packages(precdiff_base.__path__, 'precdiff_base.'):\n"
        "    if module.name.endswith('__main__'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(module.name)\n"
        "    except ImportError as exc:\n"
        "        if 'triton' not in str(exc) and 'torch_npu' not in str(exc):\n"
        "            raise\n"
        "print(sorted({name.split('.')[0] for name in sys.modules if name.startswith('precdiff')}))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[-2] == "['precdiff_base']"
    sources = list((folder / "precdiff_base").rglob("*.py"))
    assert len(sources) > 50
    assert not any(
        "from precdiff." in path.read_text() or "import precdiff\n" in path.read_text() for path in sources
    )
