"""docs/cli.md is the current output of docs/cli_reference.py."""

from __future__ import annotations

import runpy
from pathlib import Path

DOCS = Path(__file__).parents[1] / "docs"


def test_cli_reference_is_current() -> None:
    generate = runpy.run_path(str(DOCS / "cli_reference.py"))["reference"]
    assert (DOCS / "cli.md").read_text() == generate(), (
        "regenerate: python docs/cli_reference.py > docs/cli.md"
    )
