"""What pausing Python's cyclic garbage collector during a hooked forward changes, on the CPU.

``capture/hooks.py`` turns the collector off while hooks are attached (``collector_paused``) and, on
resuming, hands what the block allocated to the oldest generation without a collection (``_settle``).
This measures captures with the pause as it is (``paused``), with the pause but a plain resume
(``paused-plain``: the young collection that follows scans everything the capture still holds) and
without the pause (``running``), alternating in one process (so all see the same heap and the same
machine load): op-level and module-level ``--summary`` captures of Llama-8B's op graph
(benchmarks/op_tracer_host.py's model and its precomputed summaries), each forward followed by the
sink's flush and the writer's finish. Per capture: process CPU time, the time spent in collections
(``gc.callbacks``, CPU time) and the collections per generation. The process holds what a real capture
process holds (torch and transformers imported: a few hundred thousand tracked objects), which is what
a full collection walks. Last, the unreachable objects ``gc.collect()`` finds after one paused
capture of each level: what the pause leaves uncollected meanwhile.

    PYTHONPATH=$PWD python benchmarks/gc_pause_host.py --out benchmarks/results/gc_pause_host_cpu_s7.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from op_tracer_host import Precomputed, build_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--captures", type=int, default=30, help="captures per variant and level")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from precdiff.capture import hooks, op_trace
    from precdiff.capture import sink as sink_module
    from precdiff.capture.names import name_filter
    from precdiff.capture.runner import hooked_forward
    from precdiff.capture.sink import TensorSink
    from precdiff.config import CaptureOptions
    from precdiff.store import CaptureWriter

    torch.set_num_threads(1)
    model = build_model()
    ids = torch.arange(5, 5 + args.tokens).unsqueeze(0)
    folder = Path(tempfile.mkdtemp())
    sink_module.SummaryBatch = lambda **kw: Precomputed(**kw)  # type: ignore[assignment,misc]
    paused = hooks.collector_paused
    clock: dict[str, Any] = {"start": 0.0, "spent": 0.0, "counts": [0, 0, 0]}

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            clock["start"] = time.process_time()
        else:
            clock["spent"] += time.process_time() - clock["start"]
            clock["counts"][info["generation"]] += 1

    gc.callbacks.append(on_collection)

    def capture(level: str) -> float:
        path = folder / "gc.h5"
        start = time.process_time()
        with CaptureWriter(path) as writer:
            sink = TensorSink(writer, summary=True, device=torch.device("cpu"), num_tokens=args.tokens)
            options = CaptureOptions(summary=True, level=level)
            with torch.no_grad(), hooked_forward(model, name_filter(None, None), sink, options):
                model(input_ids=ids, use_cache=False)
            sink.flush()
            writer.finish()
        path.unlink()
        return time.process_time() - start

    variants = ("paused", "paused-plain", "running")
    settle = hooks._settle
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for level in ("op", "module"):
        samples: dict[str, dict[str, Any]] = {v: {"s": [], "gc_s": [], "counts": [0, 0, 0]} for v in variants}
        for index in range(args.captures + 2):
            for variant in variants if index % 2 == 0 else variants[::-1]:
                pause = contextlib.nullcontext if variant == "running" else paused
                hooks.collector_paused = op_trace.collector_paused = pause  # type: ignore[assignment]
                hooks._settle = settle if variant == "paused" else lambda: None  # type: ignore[assignment]
                clock["spent"], clock["counts"] = 0.0, [0, 0, 0]
                seconds = capture(level)
                if index >= 2:  # the first two: warm-up
                    samples[variant]["s"].append(seconds)
                    samples[variant]["gc_s"].append(clock["spent"])
                    samples[variant]["counts"] = [
                        a + b for a, b in zip(samples[variant]["counts"], clock["counts"])
                    ]
        results[level] = {
            variant: {
                "capture_ms": {
                    "median": statistics.median(s["s"]) * 1e3,
                    "mean": statistics.mean(s["s"]) * 1e3,
                },
                "gc_ms": {
                    "median": statistics.median(s["gc_s"]) * 1e3,
                    "mean": statistics.mean(s["gc_s"]) * 1e3,
                    "max": max(s["gc_s"]) * 1e3,
                },
                "collections_per_generation": s["counts"],
            }
            for variant, s in samples.items()
        }
        for variant, figures in results[level].items():
            print(
                f"{level:<7}{variant:<8} capture median {figures['capture_ms']['median']:.1f} ms "
                f"(mean {figures['capture_ms']['mean']:.1f}), in the collector median "
                f"{figures['gc_ms']['median']:.2f} ms, mean {figures['gc_ms']['mean']:.2f}, max "
                f"{figures['gc_ms']['max']:.1f}; collections {figures['collections_per_generation']} "
                f"in {args.captures} captures"
            )
    # What a paused forward leaves for the collector: unreachable objects (cycles) found afterwards.
    garbage = {}
    hooks.collector_paused = op_trace.collector_paused = paused  # type: ignore[assignment]
    hooks._settle = settle  # type: ignore[assignment]
    for level in ("op", "module"):
        gc.collect()
        capture(level)
        garbage[level] = gc.collect()
    print(f"cyclic garbage found after one paused capture: {garbage}")
    report = {
        "benchmark": "gc_pause_host",
        "date": date.today().isoformat(),
        "host": platform.node(),
        "python": platform.python_version(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1m": os.getloadavg()[0],
        "model": "llama-8b op graph: 32 layers, 32/8 heads, hidden 64, vocab 256, bf16, sdpa (op_tracer_host.py)",
        "tokens": args.tokens,
        "captures_per_variant": args.captures,
        "tracked_objects": len(gc.get_objects()),
        "clock": "process CPU time, 1 torch thread",
        "results": results,
        "cyclic_garbage_after_paused_capture": garbage,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
