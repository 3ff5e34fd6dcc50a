"""Throughput and peak memory of ``precdiff compare`` on two large synthetic captures.

Builds A and B (default ~2 GB each): one ``[1, 2048, 128256]`` float32 logits tensor plus
``[1, 2048, 4096]`` bfloat16 hidden states up to the target size; B is A plus small noise, so every
metric path runs. Then compares them in a *subprocess*, so the building does not count towards the
peak RSS, and reports MB/s of stored tensor data (both files counted) and peak RSS.

    taskset -c 0,1 python benchmarks/compare_throughput.py --out benchmarks/results/compare_throughput_cpu.json

The files are flushed to disk (``os.sync``) before the comparison and then read from the page
cache when RAM allows (they were just written): this measures precdiff's compute, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

LOGITS_SHAPE = (1, 2048, 128256)
HIDDEN_SHAPE = (1, 2048, 4096)


def _stats(values: np.ndarray) -> dict[str, float]:
    sample = values.reshape(-1)[:: max(1, values.size // 1_000_000)].astype(np.float64)
    return {
        "min": float(sample.min()),
        "max": float(sample.max()),
        "mean": float(sample.mean()),
        "std": float(sample.std()),
        "l2": float(np.sqrt(np.dot(sample, sample) * values.size / sample.size)),
        "nan_count": 0.0,
        "inf_count": 0.0,
    }


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # truncation is fine here


def build(folder: Path, target_bytes: int) -> tuple[Path, Path, int]:
    """Write A.h5 and B.h5; returns their paths and the stored tensor bytes of one file."""
    from precdiff.store import CaptureWriter

    rng = np.random.default_rng(0)
    paths = folder / "A.h5", folder / "B.h5"
    writers = [CaptureWriter(p) for p in paths]
    manifest = {
        "dtype": "bfloat16",
        "model": {
            "layers_path": "model.layers",
            "num_layers": 0,
            "weights_sha256": "synthetic",
            "config": {},
        },
    }
    for w in writers:
        w.write_manifest(manifest)
        w.write_input(list(range(LOGITS_SHAPE[1])), None)
    logits = rng.standard_normal(LOGITS_SHAPE, dtype=np.float32)
    stored = logits.nbytes
    hidden_bytes = int(np.prod(HIDDEN_SHAPE)) * 2
    count = max(1, (target_bytes - stored) // hidden_bytes)
    for i in range(count):
        a = rng.standard_normal(HIDDEN_SHAPE, dtype=np.float32)
        b = a + np.float32(1e-2) * rng.standard_normal(HIDDEN_SHAPE, dtype=np.float32)
        for w, values in zip(writers, (a, b)):
            w.write_tensor(
                f"model.layers.{i}",
                module=f"model.layers.{i}",
                role="output",
                dtype=torch.bfloat16,
                shape=HIDDEN_SHAPE,
                stats=_stats(values),
                data=_bf16_bits(values),
            )
        stored += hidden_bytes
    noisy = logits + np.float32(1e-3) * rng.standard_normal(LOGITS_SHAPE, dtype=np.float32)
    for w, values in zip(writers, (logits, noisy)):
        w.write_tensor(
            "lm_head",
            module="lm_head",
            role="output",
            dtype=torch.float32,
            shape=LOGITS_SHAPE,
            stats=_stats(values),
            data=values,
        )
        w.finish()
    return paths[0], paths[1], stored


def measure(a: str, b: str) -> None:
    """(Subprocess) compare A and B; print elapsed seconds and peak RSS as JSON."""
    from precdiff.compare.compare import compare

    start = time.perf_counter()
    result = compare(a, b)
    elapsed = time.perf_counter() - start
    peak = _peak_rss_bytes()
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "peak_rss_bytes": peak,
                "tensors": len(result.tensors),
                "status": result.verdict.status,
            }
        )
    )


def _peak_rss_bytes() -> int:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a
    child started by a parent holding gigabytes of test data would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="stored tensor data per capture (GB)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--measure", nargs=2, metavar=("A", "B"), help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="build the captures in this folder and keep them")
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    with tempfile.TemporaryDirectory(prefix="precdiff-bench-") as tmp:
        a, b, stored = build(args.keep or Path(tmp), int(args.size_gb * 1e9))
        # Flush the freshly written files first: otherwise the kernel's write-back of 4 GB of dirty
        # pages competes with the comparison and the figure measures the disk, not precdiff.
        os.sync()
        run = subprocess.run(
            [sys.executable, __file__, "--measure", str(a), str(b)],
            capture_output=True,
            text=True,
            check=True,
        )
        timing = json.loads(run.stdout.strip().splitlines()[-1])
    total = 2 * stored
    result = {
        "benchmark": "compare_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "stored_bytes_both_files": total,
        "seconds": timing["seconds"],
        "throughput_mb_per_s": total / timing["seconds"] / 1e6,
        "peak_rss_mb": timing["peak_rss_bytes"] / 1e6,
        "tensors": timing["tensors"],
        "verdict": timing["status"],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
