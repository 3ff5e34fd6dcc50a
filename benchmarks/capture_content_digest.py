"""Whether two versions of precdiff write the same capture files: a digest of everything a capture
stores, for several kinds of capture of the tiny Llama.

The digest covers every dataset (index rows field by field, tensor data, sketches, checksums, logprobs,
generation) and every attribute, except what differs between any two runs (``created_utc``) and the
manifest (versions, command line, timings). ``--baseline REV`` computes the same in a subprocess on
``git archive REV precdiff`` and reports, per kind, whether the digests are equal: a host-time
optimisation of the capture path must change no stored byte.

    PYTHONPATH=$PWD python benchmarks/capture_content_digest.py --baseline main \\
        --out benchmarks/results/capture_content_digest_s4.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from op_tracer_host import ROOT, _unpack

INPUT_IDS = (5, 6, 7, 8, 9)
# label -> CaptureOptions keywords: module and op level, summary and full, inputs, a focus capture.
KINDS: dict[str, dict[str, object]] = {
    "module summary": {"summary": True},
    "module full, inputs": {"save_inputs": True},
    "op summary": {"summary": True, "level": "op"},
    "op summary, all ops": {"summary": True, "level": "op", "all_ops": True},
    "op full": {"level": "op"},
    "op focus": {"level": "op", "focus": "layers.1"},
}


def digest(path: Path) -> str:
    """SHA-256 of a capture file's content (see the module docstring)."""
    import h5py
    import numpy as np

    hasher = hashlib.sha256()

    def attributes(obj: h5py.HLObject) -> None:
        for key in sorted(obj.attrs):
            if key != "created_utc":
                hasher.update(f"{key}={obj.attrs[key]!r}".encode())

    def visit(name: str, obj: h5py.HLObject) -> None:
        if name == "manifest":
            return
        hasher.update(name.encode())
        if isinstance(obj, h5py.Dataset):
            values = obj[...]
            if values.dtype.names:
                for field in values.dtype.names:
                    hasher.update(repr(values[field].tolist()).encode())
            elif values.dtype.kind == "O":
                hasher.update(repr(values.tolist()).encode())
            else:
                hasher.update(np.ascontiguousarray(values).tobytes())
        attributes(obj)

    with h5py.File(path, "r") as file:
        file.visititems(visit)
        attributes(file)
    return hasher.hexdigest()


def measure() -> dict[str, str]:
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions

    digests = {}
    with tempfile.TemporaryDirectory() as folder:
        for index, (label, options) in enumerate(KINDS.items()):
            path = Path(folder) / f"{index}.h5"
            capture(
                "tiny:llama",
                path,
                CaptureInput(input_ids=INPUT_IDS),
                CaptureOptions(device="cpu", max_new_tokens=2, **options),  # type: ignore[arg-type]
            )
            digests[label] = digest(path)
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="also digest this git revision's captures, and compare")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure()))
        return
    report: dict[str, object] = {"benchmark": "capture_content_digest", "date": date.today().isoformat()}
    this = measure()
    report["this"] = this
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="precdiff-digest-") as tmp:
            source = _unpack(args.baseline, Path(tmp) / "baseline")
            run = subprocess.run(
                [sys.executable, __file__, "--measure"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(source)},
                cwd=ROOT,
            )
        baseline = json.loads(run.stdout.strip().splitlines()[-1])
        report["baseline"] = {"revision": args.baseline, **baseline}
        report["same_content"] = {label: this[label] == baseline[label] for label in KINDS}
    for label in KINDS:
        same = report.get("same_content", {})
        assert isinstance(same, dict)
        print(f"{label:<22}{this[label][:16]}  {'' if not same else 'same' if same[label] else 'DIFFERENT'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
