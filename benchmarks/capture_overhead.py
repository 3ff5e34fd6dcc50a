"""Capture overhead: plain forward vs forward under capture (--summary) vs full capture.

A Llama-8B-shaped model with random weights (hidden 4096, 32 layers, MLP 14336, 32 heads / 8 KV heads,
vocab 128256) runs a prefill of ``--tokens`` tokens. The capture modes run the same forward:

- ``plain``: ``model(ids)`` under ``torch.no_grad()``;
- ``summary``: the same under precdiff's hooks, statistics on the device, written to an HDF5 file;
- ``summary-stats``: ``summary`` without the sketch and checksum (statistics only);
- ``full``: the same, every tensor copied to the host and written;
- ``full+fsync``: ``full`` and an ``fsync`` of the file, against ``disk``: the same number of bytes
  written sequentially (16 MiB blocks) and fsynced to the same folder, measured in the same run.
  ``disk`` / ``full+fsync`` time is the share of the machine's sequential write speed the capture
  reaches (``share_of_disk_write``; issue #16 asks for ≥ 85 %);
- ``host``: no forward, a fixed amount of host work (:func:`host_probe`): the host's speed in each
  round, for reading the other modes' rounds against it.

``--baseline FOLDER`` (a copy of another revision made by ``benchmarks/baseline_package.py``) adds
``<mode>-base`` after each summary mode: the same capture by that revision, in the same rounds of the
same process; ``side_by_side`` in the JSON gives each mode's median time over its twin's, round by
round (the host's speed drifts between processes, so two processes cannot compare two versions).

Each mode is timed ``--repeats`` times after one warm-up (full: ``--full-repeats``); the table gives
medians and the ratio to ``plain``. Output JSON goes to ``--out``.

    python benchmarks/capture_overhead.py --device cuda --out benchmarks/results/capture_overhead_h100.json
    python benchmarks/capture_overhead.py --device cpu --layers 4 --out ...   # CPU: fewer layers
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import torch
import transformers

from precdiff.capture.names import name_filter
from precdiff.devices import device_facts, synchronize

sys.path.insert(0, str(Path(__file__).parent))
import baseline_package
from writer_throughput import write_sequentially

LLAMA_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=8192,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def build_model(layers: int, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    config = transformers.LlamaConfig(**{**LLAMA_8B, "num_hidden_layers": layers})
    config._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model = model.to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.02)
        for module in model.modules():  # rotary inv_freq was created on meta: recompute it
            if hasattr(module, "inv_freq") and hasattr(module, "rope_init_fn"):
                inv_freq, _ = module.rope_init_fn(module.config, device)
                module.inv_freq = inv_freq
                module.original_inv_freq = inv_freq
    return model.eval()  # type: ignore[no-any-return]


def prompt_ids(tokens: int, device: torch.device) -> torch.Tensor:
    """The benchmarks' prompt: ``tokens`` seeded random ids of the 8B vocabulary, ``[1, tokens]``."""
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, LLAMA_8B["vocab_size"], (1, tokens), generator=generator).to(device)


def summary_launch(text: str | None) -> list[int] | None:
    """Set the summary kernel's launch with the sketch from ``GRID,TR,WARPS,VEC`` (benchmarks/
    sweep_summary_kernel.py's pick), or leave capture/summary_triton.py's; returns the one in use."""
    if not torch.cuda.is_available():
        return None
    from precdiff.capture import summary_triton

    if text:
        grid, rows, warps, vec = (int(v) for v in text.split(","))
        summary_triton.LAUNCH[True] = (grid, rows, warps, vec)
    return list(summary_triton.LAUNCH[True])


class CaptureApi(NamedTuple):
    """What the capture benchmarks call of one precdiff version: this tree's or a ``--baseline``'s."""

    attach: Callable[..., Any]
    TensorSink: Callable[..., Any]
    CaptureWriter: Callable[..., Any]
    hooked_forward: Callable[..., Any]
    CaptureOptions: Callable[..., Any]


def versions(baseline: Path | None) -> dict[str, CaptureApi]:
    """The versions to time, by the suffix of their modes' names: ``""`` this tree, ``"-base"`` the
    copy of another revision in ``baseline`` (benchmarks/baseline_package.py)."""
    packages = {"": "precdiff"}
    if baseline is not None:
        baseline_package.load(baseline)
        packages["-base"] = baseline_package.NAME

    def api(package: str) -> CaptureApi:
        def module(name: str) -> Any:
            return importlib.import_module(f"{package}.{name}")

        return CaptureApi(
            module("capture.hooks").attach,
            module("capture.sink").TensorSink,
            module("store").CaptureWriter,
            module("capture.runner").hooked_forward,
            module("config").CaptureOptions,
        )

    return {suffix: api(package) for suffix, package in packages.items()}


def with_twins(modes: list[str], twinned: tuple[str, ...], suffixes: dict[str, CaptureApi]) -> list[str]:
    """``modes`` with each mode of ``twinned`` followed by its twins of the other versions."""
    return [f"{mode}{suffix}" for mode in modes for suffix in (suffixes if mode in twinned else [""])]


def side_by_side(measured: dict[str, list[float]]) -> dict[str, float]:
    """Per mode with a ``-base`` twin: the median over rounds of its time over the twin's in the same
    round (both ran back to back, under the same host conditions)."""
    return {
        mode: statistics.median(ours / theirs for ours, theirs in zip(times, measured[f"{mode}-base"]))
        for mode, times in measured.items()
        if f"{mode}-base" in measured
    }


def without_gc(run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with Python's cyclic garbage collector paused, and restored after: a mode named
    ``<mode>-nogc`` measures what the collector's passes cost ``<mode>`` in the same run."""

    def paused() -> None:
        enabled = gc.isenabled()
        gc.disable()
        try:
            run()
        finally:
            if enabled:
                gc.enable()

    return paused


def host_probe(device: torch.device, steps: int = 422) -> Callable[[], None]:
    """The ``host`` mode: a fixed amount of host work shaped like a capture's per-tensor work (Python
    objects made and dropped, and a kernel launch on a tiny tensor, ``steps`` times) and almost no
    device work. Interleaved with the other modes, its time in each round says how fast the host ran
    then: the H200 machine's host speed changed by up to 2x within a run."""
    tiny = torch.zeros(8, device=device)

    def probe() -> None:
        rows = []
        for step in range(steps):
            rows.append({"name": f"model.layers.{step}", "shape": (1, 2048, 4096), "index": step})
            tiny.add_(1.0)
        rows.clear()

    return probe


def quiet_host(measured: dict[str, list[float]], slack: float = 1.1) -> dict[str, object] | None:
    """The rounds in which the host ran near its fastest (the ``host`` probe within ``slack`` of its
    least time), and per mode the median over those rounds of its time over ``plain``'s in the same
    round; None without both modes. On a host whose speed drifts, these ratios are the ones that
    compare between runs."""
    probe, plain = measured.get("host"), measured.get("plain")
    if not probe or not plain:
        return None
    rounds = [i for i, seconds in enumerate(probe) if seconds <= slack * min(probe)]
    ratios = {
        mode: statistics.median(times[i] / plain[i] for i in rounds)
        for mode, times in measured.items()
        if mode not in ("plain", "host") and len(times) == len(plain)
    }
    return {"rounds": rounds, "slack": slack, "ratio_to_plain": ratios}


def quiet_line(quiet: dict[str, object] | None, repeats: int) -> str:
    """:func:`quiet_host`'s result as one printed line (empty without it)."""
    if quiet is None:
        return ""
    ratios: dict[str, float] = quiet["ratio_to_plain"]  # type: ignore[assignment]
    rounds: list[int] = quiet["rounds"]  # type: ignore[assignment]
    listed = ", ".join(f"{mode} {ratio:.2f}" for mode, ratio in ratios.items())
    return f"rounds with the host near its fastest: {len(rounds)} of {repeats}; × plain in those: {listed}"


def mode_run(runs: dict[str, Callable[[], None]], mode: str) -> Callable[[], None]:
    """The run of ``mode``, ``<mode>-nogc`` being ``<mode>`` without the garbage collector."""
    if mode.endswith("-nogc"):
        return without_gc(runs[mode.removesuffix("-nogc")])
    return runs[mode]


def cpu_times() -> dict[str, float]:
    """The host's CPU time so far, in seconds, by kind (Linux /proc/stat; empty elsewhere): the
    difference over a benchmark says how busy the host was and how much time the hypervisor gave
    to other machines (``steal``), which inflates every host-bound figure."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    ticks = os.sysconf("SC_CLK_TCK")
    return {name: int(value) / ticks for name, value in zip(names, fields)}


def host_load(before: dict[str, float]) -> dict[str, float]:
    """What the host's CPUs did since ``before`` (:func:`cpu_times`), as shares of their time, and
    the 1-minute load average."""
    after = cpu_times()
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    total = sum(spent.values()) or 1.0
    shares = {f"{name}_share": value / total for name, value in spent.items()}
    return {"load_average_1m": os.getloadavg()[0], **shares}


def timed_rounds(
    runs: dict[str, Callable[[], None]], device: torch.device, repeats: int
) -> dict[str, list[float]]:
    """Seconds per run of each mode: one warm-up run each, then ``repeats`` rounds that run every mode
    once in turn, so that load from other processes on a shared host weighs on all modes alike
    (run one mode after the other, a busy minute lands on one mode only)."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {mode: [] for mode in runs}
    for _ in range(repeats):
        for mode, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[mode].append(time.perf_counter() - start)
    return times


def timed(run: Callable[[], None], device: torch.device, repeats: int) -> list[float]:
    run()  # warm-up: kernel selection, Triton compilation, allocator growth
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--full-repeats", type=int, default=2)
    parser.add_argument("--modes", default="plain,summary,summary-stats,full,full+fsync,disk")
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
    dtype = getattr(torch, args.dtype)
    model = build_model(args.layers, dtype, device)
    ids = prompt_ids(args.tokens, device)
    keep = name_filter(None, None)
    folder = Path(tempfile.mkdtemp(dir=args.tmp))

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    stored_bytes: dict[str, int] = {}

    def captured(
        summary: bool, fsync: bool = False, sketches: bool = True, suffix: str = ""
    ) -> Callable[[], None]:
        api = apis[suffix]

        def run() -> None:
            path = folder / "bench.h5"
            with api.CaptureWriter(path) as writer:
                sink = api.TensorSink(writer, summary=summary, device=device, sketches=sketches)
                with torch.no_grad(), api.attach(model, keep, sink):
                    model(input_ids=ids, use_cache=False)
                sink.flush()
                writer.finish()
            if fsync:
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
            mode = ("summary" if sketches else "summary-stats") if summary else "full"
            stored_bytes[mode + suffix] = path.stat().st_size
            path.unlink()

        return run

    def disk() -> None:
        """Sequential write of as many bytes as a full capture stores, then fsync."""
        write_sequentially(folder / "disk.bin", stored_bytes.get("full", 8 << 30))

    runs = {
        "plain": plain,
        **{f"summary{suffix}": captured(True, suffix=suffix) for suffix in apis},
        **{f"summary-stats{suffix}": captured(True, sketches=False, suffix=suffix) for suffix in apis},
        "full": captured(False),
        "full+fsync": captured(False, fsync=True),
        "disk": disk,
        "host": host_probe(device),
    }
    started = cpu_times()
    modes = with_twins(args.modes.split(","), ("summary", "summary-stats"), apis)
    quick = [
        mode
        for mode in modes
        if mode.removesuffix("-nogc").removesuffix("-base") in ("plain", "summary", "summary-stats", "host")
    ]
    measured = timed_rounds({mode: mode_run(runs, mode) for mode in quick}, device, args.repeats)
    for mode in modes:
        if mode not in quick:
            measured[mode] = timed(mode_run(runs, mode), device, args.full_repeats)
    results: dict[str, dict[str, object]] = {
        mode: {
            "median_s": statistics.median(measured[mode]),
            "least_s": min(measured[mode]),
            "times_s": measured[mode],
        }
        for mode in modes
    }
    base = float(results["plain"]["median_s"])  # type: ignore[arg-type]
    for row in results.values():
        row["ratio_to_plain"] = float(row["median_s"]) / base  # type: ignore[arg-type]
    for mode, row in results.items():
        size = stored_bytes.get(mode if mode.startswith("summary") else "full")
        if mode != "plain" and size is not None:
            row["gb_per_s"] = size / float(row["median_s"]) / 1e9  # type: ignore[arg-type]
    if "full+fsync" in results and "disk" in results:
        results["full+fsync"]["share_of_disk_write"] = float(results["disk"]["median_s"]) / float(  # type: ignore[arg-type]
            results["full+fsync"]["median_s"]  # type: ignore[arg-type]
        )
    report = {
        "benchmark": "capture_overhead",
        "date": date.today().isoformat(),
        "device": device_facts(device),
        "host": platform.node(),
        # Other processes and machines on the host inflate the host-bound times: read them against this.
        "host_load": host_load(started),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": {"shape": "llama-8b", **LLAMA_8B, "num_hidden_layers": args.layers},
        "dtype": args.dtype,
        "tokens": args.tokens,
        "summary_launch": launch,
        "quiet_host": quiet_host({mode: measured[mode] for mode in quick}),
        "baseline": str(args.baseline) if args.baseline else None,
        "side_by_side": side_by_side(measured),
        "stored_bytes": stored_bytes,
        "summary_size_share_of_full": (
            stored_bytes["summary"] / stored_bytes["full"]
            if {"summary", "full"} <= stored_bytes.keys()
            else None
        ),
        "results": results,
    }
    print(
        f"capture overhead: llama-8B shape, {args.layers} layers, {args.tokens} tokens, {args.dtype}, "
        f"{report['device']['name']}"
    )
    print(f"{'mode':<10}{'median s':>12}{'× plain':>10}")
    for mode, row in results.items():
        print(f"{mode:<10}{float(row['median_s']):>12.4f}{float(row['ratio_to_plain']):>10.2f}")  # type: ignore[arg-type]
    if report["quiet_host"] is not None:
        print(quiet_line(report["quiet_host"], args.repeats))  # type: ignore[arg-type]
    for mode, ratio in report["side_by_side"].items():  # type: ignore[attr-defined]
        print(f"{mode}: this tree's time over the baseline's, round by round (median): {ratio:.3f}")
    if "full+fsync" in results and "disk" in results:
        print(
            f"full+fsync reaches {results['full+fsync']['share_of_disk_write']:.0%} of the disk mode's speed"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
