"""Op-level capture overhead: plain forward vs module-level and op-level ``--summary`` capture.

The model and timing are those of ``benchmarks/capture_overhead.py`` (Llama-8B shape, random weights,
bf16, a prefill of ``--tokens`` tokens). Modes, each the same forward:

- ``plain``: ``model(ids)`` under ``torch.no_grad()``;
- ``module``: under module hooks, ``--summary`` statistics streamed to an HDF5 file (``capture --summary``);
- ``op``: under the op tracer as well (``capture --level op --summary``): every aten op's statistics
  and input references written too;
- ``module-stats`` / ``op-stats``: the same without the sketch and checksum (statistics only);
- ``trace``: the op tracer naming every op and resolving its input references, with a sink that
  drops everything: the tracer's own Python cost per op;
- ``host``: capture_overhead.py's host probe, no forward: the host's speed in each round.

The table gives medians, the ratio to ``plain``, the ops traced per forward and the added µs per op
(``(mode − plain) / ops``). Target on the GPU: ``op`` ≤ 3× ``plain``. Output JSON goes to ``--out``.
``--baseline FOLDER`` adds ``<mode>-base`` twins of the capture modes, as in capture_overhead.py.

    PYTHONPATH=$PWD python benchmarks/op_capture_overhead.py --device cuda \\
        --out benchmarks/results/op_capture_overhead_h200.json
    PYTHONPATH=$PWD python benchmarks/op_capture_overhead.py --device cpu --layers 2 --tokens 2048 \\
        --repeats 2 --out benchmarks/results/op_capture_overhead_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import (
    LLAMA_8B,
    CaptureApi,
    build_model,
    cpu_times,
    host_load,
    host_probe,
    mode_run,
    prompt_ids,
    quiet_host,
    quiet_line,
    side_by_side,
    summary_launch,
    timed_rounds,
    versions,
    with_twins,
)

from precdiff.capture.names import name_filter
from precdiff.capture.op_trace import CallTree, OpTracer
from precdiff.devices import device_facts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", default="plain,module,op,module-stats,op-stats,trace")
    parser.add_argument("--tmp", default=None, help="folder for the capture files (deleted after each run)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--launch", default=None, help="GRID,TR,WARPS,VEC: the summary kernel's launch with the sketch"
    )
    parser.add_argument(
        "--baseline", type=Path, default=None, help="also time this copy (baseline_package.py)"
    )
    args = parser.parse_args()
    launch = summary_launch(args.launch)
    apis = versions(args.baseline)

    device = torch.device(args.device)
    model = build_model(args.layers, getattr(torch, args.dtype), device)
    ids = prompt_ids(args.tokens, device)
    keep = name_filter(None, None)
    folder = Path(tempfile.mkdtemp(dir=args.tmp))
    ops_per_forward: dict[str, int] = {}

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    def captured(level: str, sketches: bool = True, api: CaptureApi = apis[""]) -> Callable[[], None]:
        options = api.CaptureOptions(summary=True, level=level)

        def run() -> None:
            path = folder / "bench.h5"
            with api.CaptureWriter(path) as writer:
                sink = api.TensorSink(
                    writer, summary=True, device=device, num_tokens=args.tokens, sketches=sketches
                )
                with torch.no_grad(), api.hooked_forward(model, keep, sink, options):
                    model(input_ids=ids, use_cache=False)
                sink.flush()
                ops_per_forward[level] = writer.tensor_count
                writer.finish()
            path.unlink()

        return run

    def trace() -> None:
        tree = CallTree()
        tracer = OpTracer(tree, lambda *_: None, references=True, model=model)
        with torch.no_grad(), tree.hooked(model), tracer:
            model(input_ids=ids, use_cache=False)
        ops_per_forward["trace"] = tracer.traced_ops

    runs = {"plain": plain, "trace": trace, "host": host_probe(device)}
    for suffix, api in apis.items():
        runs[f"module{suffix}"] = captured("module", api=api)
        runs[f"op{suffix}"] = captured("op", api=api)
        runs[f"module-stats{suffix}"] = captured("module", sketches=False, api=api)
        runs[f"op-stats{suffix}"] = captured("op", sketches=False, api=api)
    modes = with_twins(args.modes.split(","), ("module", "op", "module-stats", "op-stats"), apis)
    started = cpu_times()
    measured = timed_rounds({mode: mode_run(runs, mode) for mode in modes}, device, args.repeats)
    results: dict[str, dict[str, object]] = {
        mode: {"median_s": statistics.median(times), "least_s": min(times), "times_s": times}
        for mode, times in measured.items()
    }
    base = float(results["plain"]["median_s"])  # type: ignore[arg-type]
    traced_ops = ops_per_forward.get("trace")
    for mode, row in results.items():
        row["ratio_to_plain"] = float(row["median_s"]) / base  # type: ignore[arg-type]
        if traced_ops and mode not in ("plain", "host"):
            row["us_per_op"] = (float(row["median_s"]) - base) / traced_ops * 1e6  # type: ignore[arg-type]
    report = {
        "benchmark": "op_capture_overhead",
        "date": date.today().isoformat(),
        "device": device_facts(device),
        "host": platform.node(),
        # Other processes on the host inflate every time here: read the numbers against this.
        "host_load": host_load(started),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": {"shape": "llama-8b", **LLAMA_8B, "num_hidden_layers": args.layers},
        "dtype": args.dtype,
        "tokens": args.tokens,
        "summary_launch": launch,
        "quiet_host": quiet_host(measured),
        "baseline": str(args.baseline) if args.baseline else None,
        "side_by_side": side_by_side(measured),
        "ops_per_forward": traced_ops,
        "tensors_written": ops_per_forward,
        "results": results,
    }
    print(
        f"op capture overhead: llama-8B shape, {args.layers} layers, {args.tokens} tokens, {args.dtype}, "
        f"{report['device']['name']}; {traced_ops} ops per forward"
    )
    print(f"{'mode':<10}{'median s':>12}{'× plain':>10}{'µs/op':>10}")
    for mode, row in results.items():
        per_op = row.get("us_per_op")
        per_op_text = f"{float(per_op):>10.1f}" if per_op is not None else f"{'':>10}"  # type: ignore[arg-type]
        print(f"{mode:<10}{float(row['median_s']):>12.4f}{float(row['ratio_to_plain']):>10.2f}{per_op_text}")  # type: ignore[arg-type]
    if report["quiet_host"] is not None:
        print(quiet_line(report["quiet_host"], args.repeats))  # type: ignore[arg-type]
    for mode, ratio in report["side_by_side"].items():  # type: ignore[attr-defined]
        print(f"{mode}: this tree's time over the baseline's, round by round (median): {ratio:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
