"""What an op-level capture records per tensor, as text; run as a script to regenerate the golden file.

Pins everything the op tracer decides (names, scopes, kinds, input references, the recorded call, exact
aliases, view and metadata skipping, ``--all-ops``), not the statistics: a faster tracer must write
the same index rows.

    python tests/golden/op_index.py   # rewrites tests/golden/op_index.txt
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).parent
INPUT_IDS = (5, 6, 7, 8, 9, 10)
# (label, tiny architecture, capture options): full captures record each op's call, --summary with
# --all-ops keeps the views (aliases of their inputs' data), and an MoE routes through index ops.
CASES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("llama op", "llama", {}),
    ("llama op summary all-ops", "llama", {"summary": True, "all_ops": True}),
    ("qwen2_moe op", "qwen2_moe", {}),
)


def describe(path: Path) -> list[str]:
    """One line per tensor row, in forward order: name, module, role, kind, dtype, shape, stored, token
    axis, input references, alias target and recorded call."""
    from precdiff.store import open_capture

    with open_capture(path) as cap:
        return [
            " | ".join(
                (
                    info.name,
                    info.module,
                    info.role,
                    info.kind,
                    info.dtype,
                    str(list(info.shape)),
                    str(info.stored),
                    str(info.token_axis),
                    ",".join(info.inputs) if info.inputs is not None else "-",
                    info.alias_of or "-",
                    cap.op_call(info.name) or "-",
                )
            )
            for info in cap.tensor_infos()
        ]


def golden_text(folder: Path) -> str:
    """The op index of every case, each under a ``== label`` line."""
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions

    lines: list[str] = []
    for label, arch, extra in CASES:
        options = CaptureOptions(device="cpu", level="op", max_new_tokens=0, **extra)  # type: ignore[arg-type]
        path = capture(f"tiny:{arch}", folder / "op.h5", CaptureInput(input_ids=INPUT_IDS), options).path
        lines += [f"== {label}", *describe(path)]
        path.unlink()
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        (GOLDEN / "op_index.txt").write_text(golden_text(Path(tmp)))
    sys.stdout.write("golden op index rewritten\n")
