"""The op tracer's own cost per op, on CPU: tiny:llama on a few tokens, where compute is negligible.

Modes, each the same forward of ``tiny:llama`` (4 layers, hidden 64) on ``--tokens`` tokens:

- ``plain``: ``model(ids)``;
- ``trace``: under the op tracer with input references and a sink that drops everything;
- ``op_summary``: ``capture --level op --summary`` (statistics, index rows, HDF5 writes);
- ``module_summary``: ``capture --summary`` (module hooks only), for comparison.

``µs/op = (mode − plain) / ops traced``: what op level adds per op on top of the kernels themselves. On a
GPU the statistics run as one kernel per tensor, so ``trace`` plus the launch of that kernel is the
per-op budget: a forward with ~1,300 ops (Llama-8B shape) at a few tens of µs per op stays within
tens of milliseconds.

    PYTHONPATH=$PWD python benchmarks/op_tracer_microbench.py --out benchmarks/results/op_tracer_microbench_cpu.json
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


def median_time(run: Callable[[], None], repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
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

    runs = {"plain": plain, "trace": trace, "op_summary": summary("op"), "module_summary": summary("module")}
    medians = {mode: median_time(run, args.repeats) for mode, run in runs.items()}
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
