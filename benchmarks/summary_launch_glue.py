"""Host µs of the Python between ``summary_triton.launch`` and Triton's C launcher, per call: the
compiled kernel, the CUDA stream and the device index are stubbed, so it runs on a CPU (Triton must be
importable) and times only precdiff's glue. ``--baseline FOLDER`` (benchmarks/baseline_package.py)
times another revision's glue in the same process, round by round. ``--level batch`` times a whole
``SummaryBatch.add`` per tensor instead (arena, batch reductions every SLOTS tensors, and the results
taken at the end), with CUDA events and pinned memory stubbed too: what a module-level capture's
host spends per tensor on its summary, apart from the driver.

    PYTHONPATH=$PWD python benchmarks/summary_launch_glue.py --baseline /tmp/base --out glue.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import baseline_package


class _Compiled:
    """Stands in for a compiled Triton kernel: ``run`` does nothing."""

    function = 0
    packed_metadata = None

    def run(self, *args: Any) -> None:
        pass

    def launch_metadata(self, *args: Any) -> None:
        return None


class _Every(dict[Any, Any]):
    """A kernel cache that has every key."""

    def get(self, key: Any, default: Any = None) -> Any:
        return _Compiled()


def stubbed_launch(package: str) -> Any:
    """``package``'s summary_triton.launch with its Triton launch module stubbed."""
    launcher = importlib.import_module(f"{package}.kernels.triton_launch")
    launcher._cache = _Every()
    launcher._stream = lambda device: 0
    return importlib.import_module(f"{package}.capture.summary_triton")


class _Event:
    """Stands in for torch.cuda.Event: always done."""

    def record(self) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True


def stubbed_batch(package: str) -> Any:
    """``package``'s SummaryBatch class, its arenas on the CPU with the CUDA parts stubbed."""
    stubbed_launch(package)
    fused = importlib.import_module(f"{package}.capture.fused_summaries")
    stats = importlib.import_module(f"{package}.capture.stats")
    empty = torch.empty
    fused.torch = SimpleNamespace(
        int64=torch.int64,
        float64=torch.float64,
        empty=lambda *args, pin_memory=False, **kwargs: empty(*args, **kwargs),
        cuda=SimpleNamespace(Event=_Event),
    )
    stats._fused_available = lambda tensor: True
    return stats.SummaryBatch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--level", choices=("launch", "batch"), default="launch")
    args = parser.parse_args()
    torch.Tensor.get_device = lambda self: 0  # type: ignore[method-assign]  # CPU tensors stand in for CUDA ones
    stub = stubbed_launch if args.level == "launch" else stubbed_batch
    sides = {"this": stub("precdiff")}
    if args.baseline is not None:
        baseline_package.load(args.baseline)
        sides["baseline"] = stub(baseline_package.NAME)
    x = torch.randn(2048 * 4096).to(torch.bfloat16)
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(args.rounds + 1):
        for side, target in sides.items():
            if args.level == "launch":
                grid = target.LAUNCH[True][0]
                parts = torch.empty((grid, target.ROW), dtype=torch.float64)
                checks = torch.empty(grid, dtype=torch.int64)
                start = time.perf_counter()
                for _ in range(args.calls):
                    target.launch(x, parts, checks, sketches=True)
            else:  # a module-level forward's worth of tensors, then their results
                start = time.perf_counter()
                batch = target(sketches=True)
                for _ in range(args.calls):
                    batch.add(x)
                with np.errstate(all="ignore"):  # the stubbed kernel leaves the arena as allocated
                    assert len(batch.resolve()) == args.calls
            if round_:  # the first round warms up
                times[side].append((time.perf_counter() - start) / args.calls * 1e6)
    report: dict[str, object] = {
        "benchmark": "summary_launch_glue",
        "level": args.level,
        "date": date.today().isoformat(),
        "cpu": platform.processor() or platform.machine(),
        "median_us": {side: statistics.median(values) for side, values in times.items()},
        "least_us": {side: min(values) for side, values in times.items()},
        "times_us": times,
    }
    if "baseline" in times:
        report["ratio_this_to_baseline"] = statistics.median(
            ours / theirs for ours, theirs in zip(times["this"], times["baseline"])
        )
    print(json.dumps({key: value for key, value in report.items() if key != "times_us"}))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
