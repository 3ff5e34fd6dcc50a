"""Start-up time of the commands that must not import torch: ``--help``, ``compare``, ``inspect``, ``tokens``.

Each command runs N times in a fresh interpreter (``python -m precdiff ...``, what the console script
does); the figure is the median wall time of the whole process, start-up and work included. For
scale it also times an empty interpreter (``python -c pass``) and ``python -c 'import torch'``, and
records whether torch or transformers ended up imported by each command.

    python benchmarks/startup.py --repeats 15 --out benchmarks/results/startup_cpu.json

The inputs are two small synthetic captures (17 tensors, ~60 KB of data; B = A plus noise), a
rendered-text file and a messages file, built in a temporary folder. One more row, for contrast, runs
``tokens`` with a tokenizer directory as a side (the vendored phi3 fixture), which loads transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HIDDEN = (1, 8, 64)
_LOGITS = (1, 8, 1000)
_LAYERS = 16
ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = ROOT / "tests" / "fixtures" / "tokenizers" / "phi3"

# Appended to the measured command in a second, untimed run: which heavy packages did it import?
_PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('HEAVY=' + ','.join(m for m in ('torch', 'transformers') "
    "if m in sys.modules), file=sys.stderr))\n"
    "sys.argv = ['precdiff', *sys.argv[1:]]\n"
    "runpy.run_module('precdiff', run_name='__main__')\n"
)


def build(folder: Path) -> dict[str, Path]:
    """Write A.h5, B.h5, a rendered text and a messages file; return their paths by role."""
    import torch

    from precdiff.store import CaptureWriter
    from precdiff.store.dtypes import to_storage
    from precdiff.store.manifest import Manifest

    rng = np.random.default_rng(0)
    paths = {"a": folder / "A.h5", "b": folder / "B.h5"}
    writers = {side: CaptureWriter(path) for side, path in paths.items()}
    manifest = Manifest.from_dict(
        {
            "dtype": "float32",
            "model": {
                "layers_path": "model.layers",
                "num_layers": _LAYERS,
                "weights_sha256": "synthetic",
                "config": {},
            },
        }
    )
    tensors = {f"model.layers.{i}": _HIDDEN for i in range(_LAYERS)} | {"lm_head": _LOGITS}
    for writer in writers.values():
        writer.write_manifest(manifest)
        writer.write_input(list(range(_HIDDEN[1])), "Hello, world")
    for name, shape in tensors.items():
        a = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
        b = a + 1e-3 * torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
        for writer, value in zip(writers.values(), (a, b)):
            data = value.double()
            writer.write_tensor(
                name,
                module=name,
                role="output",
                dtype=torch.float32,
                shape=shape,
                stats={
                    "min": float(data.min()),
                    "max": float(data.max()),
                    "mean": float(data.mean()),
                    "std": float(data.std()),
                    "l2": float(data.norm()),
                    "nan_count": 0.0,
                    "inf_count": 0.0,
                },
                data=to_storage(value),
            )
    for writer in writers.values():
        writer.finish()
    text = folder / "rendered.txt"
    text.write_text("<|user|>\nHello, world<|end|>\n<|assistant|>\n", encoding="utf-8")
    messages = folder / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Hello, world"}]), encoding="utf-8")
    return {**paths, "text": text, "messages": messages}


def commands(files: dict[str, Path]) -> dict[str, list[str]]:
    """The measured command lines (``precdiff`` stands for ``python -m precdiff``)."""
    a, b = str(files["a"]), str(files["b"])
    return {
        "precdiff --help": ["--help"],
        "precdiff compare A B": ["compare", a, b],
        "precdiff inspect A": ["inspect", a],
        "precdiff tokens (text file vs capture)": [
            "tokens", "--messages", str(files["messages"]), "--a", str(files["text"]), "--b", a,
        ],
        # Not a file side: a tokenizer directory is loaded with transformers, which imports torch.
        "precdiff tokens (tokenizer dir vs text file)": [
            "tokens", "--messages", str(files["messages"]), "--a", str(TOKENIZER_DIR), "--b", str(files["text"]),
        ],
    }  # fmt: skip


# Every subprocess imports precdiff from this tree, not whichever precdiff is installed.
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def wall_times(argv: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=_ENV)
        times.append(time.perf_counter() - start)
    return times


def heavy_imports(args: list[str]) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=False, env=_ENV
    )
    line = next((x for x in run.stderr.splitlines() if x.startswith("HEAVY=")), "HEAVY=?")
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def _cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def _summary(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="fresh processes per command (median)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="precdiff-startup-") as tmp:
        files = build(Path(tmp))
        load_before = os.getloadavg()
        scale = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        }
        for label, argv in scale.items():
            results[label] = _summary(wall_times(argv, args.repeats))
        for label, cli_args in commands(files).items():
            times = wall_times([sys.executable, "-m", "precdiff", *cli_args], args.repeats)
            row: dict[str, object] = dict(_summary(times))
            row["imports_torch_or_transformers"] = heavy_imports(cli_args)
            results[label] = row
        load_after = os.getloadavg()
    out = {
        "benchmark": "startup",
        "date": time.strftime("%Y-%m-%d"),
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "repeats": args.repeats,
        "load_average_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "target": "precdiff --help median < 0.5 s; no torch/transformers import in the commands on files",
        "results": results,
    }
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
