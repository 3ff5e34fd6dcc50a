"""The op tracer writes exactly the index rows of tests/golden/op_index.txt (names, scopes, input
references, recorded calls, aliases, skipped views), which main's tracer wrote before it was optimised
for host time (issue 9): a change there must be a deliberate regeneration, never a side effect."""

from __future__ import annotations

import sys
from pathlib import Path

GOLDEN = Path(__file__).parents[1] / "golden"
sys.path.insert(0, str(GOLDEN))
import op_index  # noqa: E402  (tests/golden/op_index.py)


def test_op_index_matches_golden(tmp_path: Path) -> None:
    expected = (GOLDEN / "op_index.txt").read_text().splitlines()
    actual = op_index.golden_text(tmp_path).splitlines()
    # Row by row first, so that a failure names the first row that differs.
    for want, got in zip(expected, actual, strict=False):
        assert got == want
    assert len(actual) == len(expected)
