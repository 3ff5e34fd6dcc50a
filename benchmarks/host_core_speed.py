"""How fast each CPU core of this machine runs a fixed piece of Python (the host probe's kind of work:
objects made and dropped), one core at a time, this process pinned to it. On the H200 machine the
host's speed changed by up to 2x between processes; this says whether the core a process lands on
explains it. Prints one JSON object: µs per probe by core (median of ``--rounds``), and the fastest.

    python benchmarks/host_core_speed.py > cores.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def probe(steps: int = 2000) -> None:
    rows = []
    for step in range(steps):
        rows.append({"name": f"model.layers.{step}", "shape": (1, 2048, 4096), "index": step})
    rows.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    speeds: dict[int, float] = {}
    try:
        for core in cores:
            os.sched_setaffinity(0, {core})
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                probe()
                times.append(time.perf_counter() - start)
            speeds[core] = statistics.median(times) * 1e6
    finally:
        os.sched_setaffinity(0, set(cores))
    ranked = sorted(speeds, key=speeds.__getitem__)
    print(
        json.dumps(
            {
                "us_per_probe": speeds,
                "fastest": ranked[:4],
                "spread": max(speeds.values()) / min(speeds.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
