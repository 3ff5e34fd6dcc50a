"""Focus capture: full tensors only where a comparison points, statistics (and sketches) elsewhere.

The workflow for large models: ``capture --summary`` on both machines, ``compare`` (which localizes
from the summaries), then ``capture --focus-from compare.json`` on both machines, which stores full
tensors for the flagged layer and its input (the previous layer's output) only, and ``compare`` again
to drill down to the module and operator with exact metrics.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from precdiff.errors import InputError


def focus_from_report(path: str | Path) -> tuple[str, ...]:
    """Tensor-name regexes for the layer (or module) a ``compare --json`` report names, and its input.

    Raises:
        InputError: the file is missing, not a compare report, or its verdict names no place.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"--focus-from {path}: cannot read a compare JSON report ({exc})") from None
    verdict = document.get("verdict") if isinstance(document, dict) else None
    if not isinstance(verdict, dict):
        raise InputError(
            f"--focus-from {path}: no 'verdict' object; pass the file `precdiff compare --json` wrote"
        )
    module, layer = verdict.get("module"), verdict.get("layer")
    if not isinstance(module, str) or not module:
        raise InputError(
            f"--focus-from {path}: the verdict names no module (status {verdict.get('status')!r}); "
            "there is nothing to focus on — use --focus REGEX to choose tensors yourself"
        )
    if isinstance(layer, int) and f".{layer}." in f"{module}.":
        layers_path = module[: f"{module}.".index(f".{layer}.")]
        own = rf"^{re.escape(layers_path)}\.{layer}([.\[:#/]|$)"
        if layer == 0:
            return (own,)  # the first layer's input is the embedding output: tensors before it are kept
        received = rf"^{re.escape(layers_path)}\.{layer - 1}(\[0\])?$"
        return (own, received)
    return (rf"^{re.escape(module)}([.\[:#/]|$)",)


def focus_filter(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled alternation of the focus regexes (``None`` when there are none)."""
    if not patterns:
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error as exc:
        raise InputError(
            f"--focus / focus=: invalid regex ({exc}); e.g. --focus 'model\\.layers\\.12\\.'"
        ) from None
