"""Host µs of each step of queueing one tensor's summary on CUDA, timed alone (no profiler): the
baseline of a torch kernel launch, the summary kernel's launch through each layer of the launch path,
the per-batch reduction into pinned host memory, and the whole ``SummaryBatch.add``. Medians of 7 rounds of
200 calls each.

    PYTHONPATH=$PWD python benchmarks/summary_host_steps.py --out /tmp/summary_host_steps.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from profile_capture import host_us

from precdiff.capture import summary_triton
from precdiff.capture.fused_summaries import FusedSummaries
from precdiff.capture.stats import SummaryBatch
from precdiff.devices import device_facts
from precdiff.kernels import triton_launch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device("cuda")
    x = torch.randn(2048, 4096, device=device).to(torch.bfloat16)
    small = torch.randn(64, device=device)
    grid = summary_triton.LAUNCH[True][0]
    parts = torch.empty((grid, summary_triton.ROW), dtype=torch.float64, device=device)
    checks = torch.empty(grid, dtype=torch.int64, device=device)
    arena = FusedSummaries(device, summary_triton.SLOTS)
    arena_parts = torch.zeros(
        (summary_triton.SLOTS, grid, summary_triton.ROW), dtype=torch.float64, device=device
    )
    arena_checks = torch.zeros((summary_triton.SLOTS, grid), dtype=torch.int64, device=device)
    pinned = torch.empty((summary_triton.SLOTS, summary_triton.ROW + 1), dtype=torch.float64, pin_memory=True)

    def batch_add() -> None:
        batch = SummaryBatch(slots=summary_triton.SLOTS)
        for _ in range(summary_triton.SLOTS):
            batch.add(x)

    steps: dict[str, Callable[[], object]] = {
        "torch add (one kernel launch)": lambda: small.add(1),
        "torch.empty(1024) on the device": lambda: torch.empty(1024, device=device),
        "cuda Event record": lambda: torch.cuda.Event().record(),
        "summary_triton.launch": lambda: summary_triton.launch(x, parts, checks, sketches=True),
        "FusedSummaries.add (reduction every SLOTS)": lambda: arena.add(x),
        "launch_reduce of SLOTS tensors into pinned memory": lambda: summary_triton.launch_reduce(
            arena_parts, arena_checks, pinned, summary_triton.SLOTS
        ),
    }
    results = {name: host_us(step, device, rounds=7) for name, step in steps.items()}
    results["SummaryBatch.add, per tensor, new batch of SLOTS each time"] = (
        host_us(batch_add, device, calls=20, rounds=7) / summary_triton.SLOTS
    )
    arena.take(wait=True)
    results["cached launches"] = len(triton_launch._cache)
    for name, value in results.items():
        print(f"{name:<60}{value:>10.1f}")
    if args.out is not None:
        record = {"date": date.today().isoformat(), "device": device_facts(device), "host_us": results}
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
