"""Describe a capture file's structure as text (the golden layout); run as a script to regenerate.

python tests/golden/layout.py   # rewrites tests/golden/capture_layout.txt and tensor_names.txt
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py

GOLDEN = Path(__file__).parent
GOLDEN_INPUT_IDS = (1, 2, 3, 4, 5)
# Attributes whose values are part of the contract; others are listed by name only.
VALUE_ATTRS = {"format", "format_version", "complete", "name", "module", "role", "dtype", "shape", "stored"}


def describe(path: Path) -> str:
    """Sorted listing of groups, datasets (shape, storage dtype) and attributes (values for VALUE_ATTRS)."""
    lines: list[str] = []

    def attrs_text(obj: h5py.HLObject) -> str:
        parts = []
        for key in sorted(obj.attrs):
            value = obj.attrs[key]
            if key in VALUE_ATTRS:
                value = value.decode() if isinstance(value, bytes) else value
                value = value.tolist() if hasattr(value, "tolist") else value
                parts.append(f"{key}={value}")
            else:
                parts.append(key)
        return " {" + ", ".join(parts) + "}" if parts else ""

    with h5py.File(path, "r") as handle:
        lines.append("/" + attrs_text(handle))

        def visit(name: str, obj: h5py.HLObject) -> None:
            if isinstance(obj, h5py.Dataset):
                lines.append(f"{name} dataset {obj.shape} {obj.dtype}{attrs_text(obj)}")
            else:
                lines.append(f"{name} group{attrs_text(obj)}")

        handle.visititems(visit)
    return "\n".join(sorted(lines, key=lambda line: line.split(" ")[0])) + "\n"


def make_golden_capture(out: Path) -> None:
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions

    capture(
        "tiny:llama",
        out,
        CaptureInput(input_ids=GOLDEN_INPUT_IDS),
        CaptureOptions(device="cpu", max_new_tokens=3, top_k=5),
    )


def tensor_names(path: Path) -> str:
    from precdiff.store import open_capture

    with open_capture(path) as cap:
        return "\n".join(cap.tensor_names()) + "\n"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        capture_path = Path(folder) / "golden.h5"
        make_golden_capture(capture_path)
        (GOLDEN / "capture_layout.txt").write_text(describe(capture_path))
        (GOLDEN / "tensor_names.txt").write_text(tensor_names(capture_path))
    sys.stdout.write("golden files rewritten\n")
