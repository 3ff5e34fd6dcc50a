"""Throughput and peak memory of ``precdiff compare`` on two large synthetic captures.

Builds A and B (default ~2 GB each): one ``[1, 2048, 128256]`` float32 logits tensor plus
``[1, 2048, 4096]`` bfloat16 hidden states up to the target size; B is A plus small noise, so every
metric path runs. Then compares them in a *subprocess*, so the building does not count towards the
peak RSS, and reports MB/s of stored tensor data (both files counted) and peak RSS.

    taskset -c 0,1 python benchmarks/compare_throughput.py --out benchmarks/results/compare_throughput_cpu.json

The files are flushed to disk (``os.sync``) before the comparison and then read from the page
cache when RAM allows (they were just written): this measures precdiff's compute, not the disk.

``--baseline REV`` measures another revision side by side: ``git archive REV precdiff`` is unpacked
into a temporary folder and the two versions compare the same files in alternating subprocesses
(``--repeats`` each), so that both see the same machine load; the figures are the medians and their
ratio, and the run fails unless both versions produce the same comparison JSON, bit for bit.
``--captures DIR`` reuses A.h5 and B.h5 built earlier with ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from precdiff.store import format as fmt

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
    from precdiff.store.manifest import Manifest

    rng = np.random.default_rng(0)
    paths = folder / "A.h5", folder / "B.h5"
    writers = [CaptureWriter(p) for p in paths]
    manifest = Manifest.from_dict(
        {
            "dtype": "bfloat16",
            "model": {
                "layers_path": "model.layers",
                "num_layers": 0,
                "weights_sha256": "synthetic",
                "config": {},
            },
        }
    )
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
    """(Subprocess) compare A and B; print elapsed seconds, peak RSS and a digest of the result as JSON."""
    import precdiff
    from precdiff.compare.compare import compare
    from precdiff.report.json_report import comparison_to_json

    start = time.perf_counter()
    cpu_start = time.process_time()
    result = compare(a, b)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = _peak_rss_bytes()
    document = json.dumps(comparison_to_json(result), sort_keys=True, allow_nan=True)
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "peak_rss_bytes": peak,
                "tensors": len(result.tensors),
                "status": result.verdict.status,
                "result_sha256": hashlib.sha256(document.encode()).hexdigest(),
                "precdiff_imported_from": str(Path(precdiff.__file__).parent.parent),
            }
        )
    )


def _run_measure(a: Path, b: Path, source: Path | None) -> dict[str, object]:
    """One comparison in a fresh interpreter, importing precdiff from ``source`` (default: this tree,
    not whichever precdiff is installed)."""
    env = dict(os.environ)
    source = source or Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH", "")]))
    load = os.getloadavg()[0]
    run = subprocess.run(
        [sys.executable, __file__, "--measure", str(a), str(b)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    timing: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    timing["load_1min_before"] = round(load, 2)
    return timing


def _unpack(rev: str, folder: Path) -> Path:
    """``git archive REV precdiff`` unpacked under ``folder``; returns the folder for PYTHONPATH."""
    root = Path(__file__).resolve().parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "precdiff"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _side(runs: list[dict[str, object]], total: int) -> dict[str, object]:
    seconds = statistics.median(float(str(r["seconds"])) for r in runs)
    return {
        "median_seconds": seconds,
        "median_cpu_seconds": statistics.median(float(str(r["cpu_seconds"])) for r in runs),
        "throughput_mb_per_s": total / seconds / 1e6,
        "peak_rss_mb": max(int(str(r["peak_rss_bytes"])) for r in runs) / 1e6,
        "runs": runs,
    }


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
    parser.add_argument("--captures", type=Path, help="reuse A.h5 and B.h5 of this folder (from --keep)")
    parser.add_argument("--baseline", help="also measure this git revision, alternating with this tree")
    parser.add_argument("--repeats", type=int, default=1, help="comparisons per version (median)")
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    with tempfile.TemporaryDirectory(prefix="precdiff-bench-") as tmp:
        if args.captures:
            a, b = args.captures / "A.h5", args.captures / "B.h5"
            with h5py.File(a, "r") as handle:
                stored = sum(int(d.nbytes) for d in handle[fmt.TENSORS_GROUP].values())
        else:
            a, b, stored = build(args.keep or Path(tmp), int(args.size_gb * 1e9))
        # Flush the freshly written files first: otherwise the kernel's write-back of 4 GB of dirty
        # pages competes with the comparison and the figure measures the disk, not precdiff.
        os.sync()
        baseline = _unpack(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        runs: dict[str, list[dict[str, object]]] = {"this": [], "baseline": []}
        sides: list[tuple[str, Path | None]] = [("this", None)]
        if baseline is not None:
            sides.append(("baseline", baseline))
        for repeat in range(args.repeats):
            # Alternate which version goes first, so that neither always runs after the other.
            for label, source in sides[:: 1 if repeat % 2 == 0 else -1]:
                runs[label].append(_run_measure(a, b, source))
    total = 2 * stored
    first = runs["this"][0]
    result: dict[str, object] = {
        "benchmark": "compare_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "stored_bytes_both_files": total,
        "tensors": first["tensors"],
        "verdict": first["status"],
        "this": _side(runs["this"], total),
    }
    digests = {str(r["result_sha256"]) for side in runs.values() for r in side}
    if baseline is not None:
        result["baseline"] = {"revision": args.baseline, **_side(runs["baseline"], total)}
        this, base = result["this"], result["baseline"]
        assert isinstance(this, dict) and isinstance(base, dict)
        result["speedup_median"] = base["median_seconds"] / this["median_seconds"]
    result["identical_results"] = len(digests) == 1
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if len(digests) != 1:
        raise SystemExit(f"the comparison results differ between runs or versions: {sorted(digests)}")


if __name__ == "__main__":
    main()
