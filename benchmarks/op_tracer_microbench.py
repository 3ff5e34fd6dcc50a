"""The op tracer's own cost per op, on CPU: tiny:llama on a few tokens, where compute is negligible.

Modes, each the same forward of ``tiny:llama`` (4 layers, hidden 64) on ``--tokens`` tokens:

- ``plain``: ``model(ids)``;
- ``trace``: under the op tracer with input references and a sink that drops everything;
- ``trace_encode``: the same with a sink that encodes every op's recorded call (what ``replay`` of an
  op needs; a capture encodes it for kept ops only);
- ``op_summary``: ``capture --level op --summary`` (statistics, index rows, HDF5 writes);
- ``module_summary``: ``capture --summary`` (module hooks only), for comparison.

``µs/op = (mode − plain) / ops traced``: what op level adds per op on top of the kernels themselves. On a
GPU the statistics run as one kernel per tensor, so ``trace`` plus the launch of that kernel is the
per-op budget: a forward with ~1,300 ops (Llama-8B shape) at a few tens of µs per op stays within
tens of milliseconds.

    PYTHONPATH=$PWD python benchmarks/op_tracer_microbench.py --out benchmarks/results/op_tracer_microbench_cpu.json

``--clock cpu`` times this process's CPU time instead of the wall clock (the tracer's own Python cost,
far less inflated by other processes on a shared host than wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

from precdiff.capture.models import load_model
from precdiff.capture.names import name_filter
from precdiff.capture.op_trace import CallTree, OpTracer
from precdiff.capture.runner import hooked_forward
from precdiff.capture.sink import TensorSink
from precdiff.config import CaptureOptions
from precdiff.store import CaptureWriter


def median_times(
    runs: dict[str, Callable[[], None]], repeats: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Median time of each run; the runs take turns (round robin), so that a change in the host's load
    during the benchmark weighs on every mode alike."""
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {mode: [] for mode in runs}
    for _ in range(repeats):
        for mode, run in runs.items():
            start = clock()
            run()
            times[mode].append(clock() - start)
    return {mode: statistics.median(values) for mode, values in times.items()}


def _encode(*args: object) -> None:
    """A sink that encodes every op's recorded call (issue 12), where the tracer hands one over."""
    call = args[5] if len(args) > 5 else None
    encode = getattr(call, "encode", None)
    if encode is not None:
        encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    # cpu: this process's CPU time (one thread), which other processes on a shared host inflate far
    # less than the wall clock; for before/after comparisons of the tracer's own Python cost.
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    model = load_model(
        "tiny:llama",
        dtype=torch.float32,
        device=device,
        attn_implementation="sdpa",
        trust_remote_code=False,
        seed=0,
    ).model
    ids = torch.arange(5, 5 + args.tokens).unsqueeze(0)
    folder = Path(tempfile.mkdtemp())
    counts: dict[str, int] = {}

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    def trace() -> None:
        tree = CallTree()
        tracer = OpTracer(tree, lambda *_: None, references=True, model=model)
        with torch.no_grad(), tree.hooked(model), tracer:
            model(input_ids=ids, use_cache=False)
        counts["ops"] = tracer.traced_ops

    def trace_encode() -> None:
        tree = CallTree()
        tracer = OpTracer(tree, _encode, references=True, model=model)
        with torch.no_grad(), tree.hooked(model), tracer:
            model(input_ids=ids, use_cache=False)

    def summary(level: str) -> Callable[[], None]:
        options = CaptureOptions(summary=True, level=level)

        def run() -> None:
            path = folder / f"{level}.h5"
            with CaptureWriter(path) as writer:
                sink = TensorSink(writer, summary=True, device=device, num_tokens=args.tokens)
                with torch.no_grad(), hooked_forward(model, name_filter(None, None), sink, options):
                    model(input_ids=ids, use_cache=False)
                sink.flush()
                counts[level] = writer.tensor_count
                writer.finish()
            path.unlink()

        return run

    runs = {
        "plain": plain,
        "trace": trace,
        "trace_encode": trace_encode,
        "op_summary": summary("op"),
        "module_summary": summary("module"),
    }
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    medians = median_times(runs, args.repeats, clock)
    ops = counts["ops"]
    results = {
        mode: {
            "median_s": value,
            "ratio_to_plain": value / medians["plain"],
            "us_per_op": (value - medians["plain"]) / ops * 1e6 if mode != "plain" else None,
        }
        for mode, value in medians.items()
    }
    report = {
        "benchmark": "op_tracer_microbench",
        "date": date.today().isoformat(),
        "host": platform.node(),
        # Other processes on the host inflate every time here: read the numbers against this.
        "load_average_1m": os.getloadavg()[0],
        "processor": platform.processor(),
        "torch": torch.__version__,
        "threads": 1,
        "clock": args.clock,
        "model": "tiny:llama",
        "tokens": args.tokens,
        "ops_per_forward": ops,
        "tensors_written": {"op": counts["op"], "module": counts["module"]},
        "results": results,
    }
    print(f"op tracer micro-benchmark: tiny:llama, {args.tokens} tokens, {ops} ops per forward")
    print(f"{'mode':<16}{'median ms':>12}{'× plain':>10}{'µs/op':>10}")
    for mode, row in results.items():
        per_op = row["us_per_op"]
        print(
            f"{mode:<16}{row['median_s'] * 1e3:>12.2f}{row['ratio_to_plain']:>10.2f}"
            + (f"{per_op:>10.1f}" if per_op is not None else "")
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
