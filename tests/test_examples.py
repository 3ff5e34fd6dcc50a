"""Every ```bash block in examples/*/README.md runs as documented.

Blocks run in a scratch folder that links the repository's ``examples/`` and ``tests/`` (so paths in the
READMEs are the same as from the repository root, and outputs land in the scratch folder). A block
expects exit code 0 unless the line before its fence is ``<!-- expect-exit: N -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BLOCK = re.compile(r"(?:<!-- expect-exit: (\d+) -->\n)?```bash\n(.*?)```", re.S)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for readme in sorted((ROOT / "examples").glob("*/README.md")):
        for index, match in enumerate(BLOCK.finditer(readme.read_text())):
            expected = int(match.group(1) or 0)
            found.append((f"{readme.parent.name}#{index}", expected, match.group(2)))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name, expected_exit, script", blocks(), ids=[b[0] for b in blocks()])
def test_example_block_runs(tmp_path: Path, name: str, expected_exit: int, script: str) -> None:
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
