"""docs/format.md and precdiff/store/format.py agree, and no other module spells an HDF5 path."""

from __future__ import annotations

import re
from pathlib import Path

from precdiff.store import format as fmt

ROOT = Path(__file__).parents[2]


def test_every_format_name_is_documented() -> None:
    doc = (ROOT / "docs" / "format.md").read_text()
    assert f"# The precdiff capture format (version {fmt.FORMAT_VERSION})" in doc
    names = [
        value
        for key, value in vars(fmt).items()
        if key.isupper()
        and isinstance(value, str)
        and key not in ("PARTIAL_SUFFIX",)
        and not key.startswith("STAT_")
    ]
    names += list(fmt.STAT_NAMES) + list(fmt.STORAGE_DTYPES)
    missing = [name for name in names if f"`{name}" not in doc]
    assert not missing, f"undocumented format names: {missing}"


def test_no_hdf5_path_literals_outside_store() -> None:
    # Group paths like "tensors/", "logprobs/" or "generation/" belong to store/format.py alone.
    pattern = re.compile(r"""["'](?:/?(?:tensors|logprobs|generation|input)/)""")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "precdiff").rglob("*.py")
        if "store" not in path.parts and pattern.search(path.read_text())
    ]
    assert offenders == []
