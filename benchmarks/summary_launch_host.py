"""Host µs per summarised tensor at op level: one summary-kernel launch per tensor against small
tensors of one dtype sharing a launch (``SummaryBatch(defer=True)``), side by side in one process.

A forward at op level hands the sink thousands of mostly small tensors, and the GPU work is
asynchronous, so what bounds the capture is the host's time per tensor. Each round queues the same
tensors (8B-shaped op outputs: a mix of bf16 [2048, 128] / [2048, 1024] / [2048, 4096], float32
[2048, 64] and int64 [2048]) in each mode, timing the ``add`` calls (host only), then resolves them
(not timed); the figures are the medians over rounds.

    PYTHONPATH=$PWD python benchmarks/summary_launch_host.py --out benchmarks/results/summary_launch_host_h200.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from precdiff.capture.stats import SummaryBatch
from precdiff.devices import device_facts

SHAPES = [
    ((2048, 128), torch.bfloat16),
    ((2048, 1024), torch.bfloat16),
    ((2048, 64), torch.float32),
    ((2048, 4096), torch.bfloat16),
    ((2048,), torch.int64),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tensors", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device("cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    tensors = []
    for i in range(args.tensors):
        shape, dtype = SHAPES[i % len(SHAPES)]
        tensors.append((torch.randn(shape, device=device, generator=generator) * 3).to(dtype))
    times: dict[str, list[float]] = {"one launch per tensor": [], "shared launches": []}
    for _ in range(args.rounds + 1):  # the first round compiles and warms up, not counted
        for mode, defer in (("one launch per tensor", False), ("shared launches", True)):
            torch.cuda.synchronize()
            batch = SummaryBatch(defer=defer)
            start = time.perf_counter()
            for t in tensors:
                batch.add(t)
            batch.launch_waiting()
            times[mode].append((time.perf_counter() - start) / len(tensors) * 1e6)
            batch.resolve()
    for mode in times:
        times[mode] = times[mode][1:]
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    report = {
        "benchmark": "summary_launch_host",
        "date": date.today().isoformat(),
        "device": device_facts(device),
        "torch": torch.__version__,
        "tensors": args.tensors,
        "host_us_per_tensor": {mode: {"median": medians[mode], "rounds": times[mode]} for mode in times},
        "ratio_shared_to_single": medians["shared launches"] / medians["one launch per tensor"],
    }
    for mode, value in medians.items():
        print(f"{mode:24s} {value:6.1f} µs per tensor (host)")
    print(f"ratio {report['ratio_shared_to_single']:.2f}")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
