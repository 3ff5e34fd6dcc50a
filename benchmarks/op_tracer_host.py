"""Host time per op of op-level capture, on the CPU, with the op graph of Llama-8B and negligible compute.

The model has Llama-8B's structure (32 layers, 32 query and 8 key/value heads, SDPA, bf16: 1,244 traced
ops per forward, as on the GPU) but a hidden size of 64 and a vocabulary of 256, run on ``--tokens``
tokens: the kernels take microseconds, so what the modes add to ``plain`` is the host (Python) time
that bounds op level on a GPU. Modes, each one forward:

- ``plain``: ``model(ids)``;
- ``trace``: under the op tracer with input references and a sink that drops everything (the tracer's
  own cost: dispatch round trip, names, scopes, references, module hooks);
- ``op-stats`` / ``op``: ``capture --level op --summary`` without / with the sketches (the tracer plus
  the sink: statistics, alias detection, index rows, HDF5 writes);
- ``op-host``: ``op`` with the summaries precomputed (:class:`Precomputed` stands in for
  ``SummaryBatch``): the tracer, the sink and the writer only, so ``op-host − trace`` is the sink and
  writer's host time per op, apart from the summary computation (on a GPU a kernel launch per tensor);
- ``module-host``: ``capture --summary`` (module level), summaries precomputed but held back until the
  flush, as when the device runs behind the host: every row is written after the forward. Its *tail*
  (``sink.flush()`` + ``writer.finish()``) is what a GPU capture adds after the device has finished.

``µs/op = (mode − plain) / ops traced``, timed as this process's CPU time (one torch thread), which
other processes on a shared host inflate far less than the wall clock. ``tail_ms``: the flush and
finish of the ``*-host`` modes alone. Each side also writes one real op-level ``--summary`` capture
(statistics and sketches computed) and reports a digest of its content (index rows, sketches,
checksums, skipped list): the two versions must write the same file.

``--baseline REV`` measures another revision side by side: ``git archive REV precdiff`` is unpacked into
a temporary folder and the two versions run in alternating subprocesses (``--rounds`` each, every round
the median of ``--repeats`` forwards per mode), so that both see the same machine load; the figures are
the medians over rounds and their ratio, and the least time of any forward (load only ever adds to a
forward's time, so on a busy host the minima are the steadier figure).

    PYTHONPATH=$PWD python benchmarks/op_tracer_host.py --baseline main \\
        --out benchmarks/results/op_tracer_host_cpu.json
    PYTHONPATH=$PWD python benchmarks/op_tracer_host.py --baseline main --modes op-host,module-host
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

MODES = ("plain", "trace", "op-host", "op-stats", "op", "module-host")
HOST_MODES = ("op-host", "module-host")
ROOT = Path(__file__).resolve().parents[1]


class Precomputed:
    """``SummaryBatch``'s interface (capture/stats.py) returning one precomputed summary per tensor:
    as arrays (``take_*``, this tree's sink) or as ``Summary`` objects (``resolve_*``, the sink of
    revisions before the arrays).

    ``held``: summaries reach the "host" only at the flush, one batch of ``SLOTS`` at a time, as when
    the device runs behind the forward; else at once, as on a CPU.
    """

    SLOTS = 64

    def __init__(
        self, *, sketches: bool = True, slots: int | None = None, defer: bool = False, held: bool = False
    ):
        import numpy as np

        from precdiff.capture.sketch import WIDTH
        from precdiff.capture.stats import Summary

        stats = [-1.0, 1.0, 0.0, 0.5, 8.0, 0.0, 0.0]
        sketch = np.linspace(-1.0, 1.0, WIDTH) if sketches else None
        self._summary = Summary(stats, sketch, 0x1234 if sketches else None)
        self._rows = (
            np.array([stats]),
            sketch[None] if sketch is not None else None,
            np.array([0x1234], dtype=np.uint64),
        )
        self._many = self._rows
        self._queued = 0
        self._held = held

    def __len__(self) -> int:
        return self._queued

    def add(self, tensor: object) -> None:
        self._queued += 1

    def _count(self, count: int) -> int:
        count = min(count, self._queued)
        self._queued -= count
        return count

    def _block(self, count: int) -> object:
        import numpy as np

        from precdiff.capture.stats import SummaryBlock  # type: ignore[attr-defined]  # this tree's

        count = self._count(count)
        if len(self._many[0]) < count:  # views of arrays made once: the stand-in costs next to nothing
            self._many = tuple(None if a is None else np.repeat(a, 2 * count, axis=0) for a in self._rows)
        stats, sketch, checksum = self._many
        if sketch is None:
            return SummaryBlock(stats[:count], None, None)
        return SummaryBlock(stats[:count], sketch[:count], checksum[:count])

    def launch_waiting(self) -> None:
        """Nothing waits: the summaries are precomputed."""

    def take_ready(self) -> object:
        return self._block(0 if self._held else self._queued)

    def take_next(self) -> object:
        return self._block(self.SLOTS if self._held else self._queued)

    def take_all(self) -> object:
        return self._block(self._queued)

    def resolve_ready(self) -> list[object]:
        return [self._summary] * self._count(0 if self._held else self._queued)

    def resolve_next(self) -> list[object]:
        return [self._summary] * self._count(self.SLOTS if self._held else self._queued)

    def resolve(self) -> list[object]:
        return [self._summary] * self._count(self._queued)


def build_model() -> object:
    """Llama-8B's op graph with negligible compute (see the module docstring)."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=8,
        vocab_size=256,
        max_position_embeddings=512,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()


def content_digest(path: Path) -> str:
    """SHA-256 of what a capture file records per tensor: every index row, the sketches and checksums,
    the skipped list (not the creation time or the HDF5 layout)."""
    import hashlib

    import h5py
    import numpy as np

    from precdiff.store import format as fmt

    digest = hashlib.sha256()
    with h5py.File(path, "r") as file:
        index = file[fmt.TENSOR_INDEX][...]
        for field in index.dtype.names:
            column = index[field]
            if column.dtype.kind == "O":
                digest.update("\0".join(v.decode() if isinstance(v, bytes) else v for v in column).encode())
            else:
                digest.update(np.ascontiguousarray(column).tobytes())
        for name in (fmt.SKETCHES, fmt.SKETCH_CHECKSUMS):
            if name in file:
                digest.update(np.ascontiguousarray(file[name][...]).tobytes())
        digest.update(str(file.attrs.get(fmt.ATTR_SKIPPED, "")).encode())
    return digest.hexdigest()


def measure(
    tokens: int, repeats: int, modes: tuple[str, ...], packages: tuple[str, ...] = ("precdiff",)
) -> dict[str, object]:
    """Median CPU seconds per mode in this process, of each package (``precdiff`` and, side by side,
    a ``precdiff_base`` copy: every forward of each mode alternates between them)."""
    import importlib

    import torch

    torch.set_num_threads(1)
    model = build_model()
    ids = torch.arange(5, 5 + tokens).unsqueeze(0)
    device = torch.device("cpu")
    folder = Path(tempfile.mkdtemp())
    ops: dict[str, int] = {}
    tails: dict[tuple[str, str], list[float]] = {}

    def modes_of(package: str) -> tuple[dict[str, Callable[[], None]], Callable[[Path], None]]:
        """Each mode's forward with this package, and what writes its reference capture."""
        sink_module = importlib.import_module(f"{package}.capture.sink")
        name_filter = importlib.import_module(f"{package}.capture.names").name_filter
        op_trace = importlib.import_module(f"{package}.capture.op_trace")
        hooked_forward = importlib.import_module(f"{package}.capture.runner").hooked_forward
        options_type = importlib.import_module(f"{package}.config").CaptureOptions
        writer_type = importlib.import_module(f"{package}.store").CaptureWriter
        real_batch = sink_module.SummaryBatch

        def plain() -> None:
            with torch.no_grad():
                model(input_ids=ids, use_cache=False)

        def trace() -> None:
            tree = op_trace.CallTree()
            tracer = op_trace.OpTracer(tree, lambda *_: None, references=True, model=model)
            with torch.no_grad(), tree.hooked(model), tracer:
                model(input_ids=ids, use_cache=False)
            ops["traced"] = tracer.traced_ops

        def captured(
            level: str, sketches: bool, host: str | None = None, keep: Path | None = None
        ) -> Callable[[], None]:
            def run() -> None:
                path = keep or folder / "op.h5"
                if host is not None:  # the stand-in, for this capture only
                    sink_module.SummaryBatch = lambda **kw: Precomputed(**kw, held=host == "module-host")
                try:
                    with writer_type(path) as writer:
                        sink = sink_module.TensorSink(
                            writer, summary=True, device=device, num_tokens=tokens, sketches=sketches
                        )
                        options = options_type(summary=True, level=level)
                        with torch.no_grad(), hooked_forward(model, name_filter(None, None), sink, options):
                            model(input_ids=ids, use_cache=False)
                        start = time.process_time()
                        sink.flush()
                        writer.finish()
                        if host is not None:
                            tails.setdefault((package, host), []).append(time.process_time() - start)
                        ops[f"written {level}"] = writer.tensor_count
                finally:
                    sink_module.SummaryBatch = real_batch
                if keep is None:
                    path.unlink()

            return run

        every = {
            "plain": plain,
            "trace": trace,
            "op-host": captured("op", True, "op-host"),
            "op-stats": captured("op", False),
            "op": captured("op", True),
            "module-host": captured("module", True, "module-host"),
        }
        return {mode: every[mode] for mode in modes}, lambda path: captured("op", True, keep=path)()

    sides = {package: modes_of(package) for package in packages}
    for runs, _ in sides.values():
        for run in runs.values():
            run()  # warm-up
    tails.clear()
    times: dict[str, dict[str, list[float]]] = {package: {mode: [] for mode in modes} for package in packages}
    for repeat in range(repeats):
        for mode in modes:  # round robin: a change of load weighs on every mode alike
            order = packages if repeat % 2 == 0 else packages[::-1]
            for package in order:
                start = time.process_time()
                sides[package][0][mode]()
                times[package][mode].append(time.process_time() - start)
    results: dict[str, object] = {}
    for package in packages:
        reference = folder / f"digest-{package}.h5"
        sides[package][1](reference)
        mine = times[package]
        results[package] = {
            "precdiff": str(Path(importlib.import_module(package).__file__ or "").parent),
            "ops_per_forward": ops["traced"],
            "tensors_written": {
                key.split()[1]: value for key, value in ops.items() if key.startswith("written")
            },
            "op_capture_digest": content_digest(reference),
            "median_s": {mode: statistics.median(values) for mode, values in mine.items()},
            # The least time of a mode: load on a shared host only ever adds to a forward's time.
            "min_s": {mode: min(values) for mode, values in mine.items()},
            "tail_median_s": {
                mode: statistics.median(tails[package, mode])
                for mode in HOST_MODES
                if (package, mode) in tails
            },
            "tail_min_s": {
                mode: min(tails[package, mode]) for mode in HOST_MODES if (package, mode) in tails
            },
        }
    if len(packages) == 2:
        # Forward by forward, each one's time over its twin's, run next to it: the drift of the host's
        # speed cancels (the medians of two subprocesses do not).
        first, second = packages
        results["paired_ratio_median"] = {
            mode: statistics.median(
                a / b for a, b in zip(times[first][mode], times[second][mode], strict=True)
            )
            for mode in modes
        }
    return results if len(packages) == 2 else results[packages[0]]  # type: ignore[return-value]


def _unpack(rev: str, folder: Path) -> Path:
    """``git archive REV precdiff`` unpacked under ``folder``; returns the folder for PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "precdiff"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _run_side(source: Path, tokens: int, repeats: int, modes: tuple[str, ...]) -> dict[str, object]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, __file__, "--measure", "--tokens", str(tokens), "--repeats", str(repeats)]
    command += ["--modes", ",".join(modes)]
    run = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def _summary(rounds: list[dict[str, object]], modes: tuple[str, ...]) -> dict[str, object]:
    """Per mode: the median over rounds of each round's median, and the least time of any forward;
    µs per traced op (``module-host``: per module tensor written), the sink and writer's share
    (``op-host − trace``) and the tails."""
    ops = int(str(rounds[0]["ops_per_forward"]))
    written: dict[str, int] = rounds[0]["tensors_written"]  # type: ignore[assignment]
    per = {mode: written["module"] if mode == "module-host" else ops for mode in modes}
    summary: dict[str, object] = {"ops_per_forward": ops, "tensors_written": written}
    summary["op_capture_digest"] = sorted({str(r["op_capture_digest"]) for r in rounds})
    for statistic, pick in (("median", statistics.median), ("min", min)):
        values = {mode: pick(float(r[f"{statistic}_s"][mode]) for r in rounds) for mode in modes}  # type: ignore[index]
        plain = values["plain"]
        summary[f"{statistic}_s"] = values
        summary[f"{statistic}_us_per_op"] = {
            mode: (values[mode] - plain) / per[mode] * 1e6 for mode in modes if mode != "plain"
        }
        if "op-host" in modes:
            summary[f"{statistic}_sink_writer_us_per_op"] = (values["op-host"] - values["trace"]) / ops * 1e6
        summary[f"{statistic}_ratio_to_plain"] = {mode: values[mode] / plain for mode in modes}
        summary[f"tail_{statistic}_ms"] = {
            mode: pick(float(r[f"tail_{statistic}_s"][mode]) for r in rounds) * 1e3  # type: ignore[index]
            for mode in HOST_MODES
            if mode in modes
        }
    summary["rounds"] = rounds
    return summary


def _report_head(benchmark: str, load_before: float, tokens: int) -> dict[str, object]:
    """What every report of this script starts with: the machine, its load, the model and the clock."""
    return {
        "benchmark": benchmark,
        "date": date.today().isoformat(),
        "host": platform.node(),
        "python": platform.python_version(),
        "cores": len(os.sched_getaffinity(0)),
        # Other processes on the host inflate every time here: read the numbers against these.
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "model": "llama-8b op graph: 32 layers, 32/8 heads, hidden 64, vocab 256, bf16, sdpa",
        "tokens": tokens,
        "clock": "process CPU time, 1 torch thread",
    }


def in_process(folder: Path, tokens: int, repeats: int, modes: tuple[str, ...], out: Path | None) -> None:
    """This tree and a ``precdiff_base`` copy side by side in one process (see :func:`measure`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import baseline_package

    baseline_package.load(folder)
    load_before = os.getloadavg()[0]
    results = measure(tokens, repeats, modes, ("precdiff", baseline_package.NAME))
    this, base = results["precdiff"], results[baseline_package.NAME]
    assert isinstance(this, dict) and isinstance(base, dict)
    report = {
        **_report_head("op_tracer_host --baseline-package", load_before, tokens),
        "repeats": repeats,
        "baseline": str(folder),
        "this": this,
        "base": base,
        "paired_ratio_median": results["paired_ratio_median"],
        # The same op-level capture written by both versions: the change keeps every stored byte.
        "same_content": this["op_capture_digest"] == base["op_capture_digest"],
    }
    print(f"op tracer host time, in one process: {report['model']}, {tokens} tokens, {repeats} forwards each")
    print(f"{'mode':<12}{'this ms':>9}{'base ms':>9}{'this/base, paired':>19}")
    for mode in modes:
        ratio = results["paired_ratio_median"][mode]  # type: ignore[index]
        print(
            f"{mode:<12}{this['median_s'][mode] * 1e3:>9.1f}{base['median_s'][mode] * 1e3:>9.1f}{ratio:>19.3f}"
        )
    print(f"same file content (index rows, sketches, checksums): {report['same_content']}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="forwards per mode in each round (median)")
    parser.add_argument("--rounds", type=int, default=4, help="subprocesses per version, alternating")
    parser.add_argument("--baseline", help="also measure this git revision, alternating with this tree")
    parser.add_argument(
        "--baseline-package",
        type=Path,
        help="also measure this copy of another revision (benchmarks/baseline_package.py) in the same "
        "process, forward by forward",
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated; plain and trace always run"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    modes = tuple(mode for mode in MODES if mode in {"plain", "trace", *args.modes.split(",")})
    if args.measure:
        print(json.dumps(measure(args.tokens, args.repeats, modes)))
        return
    if args.baseline_package:
        in_process(args.baseline_package, args.tokens, args.repeats, modes, args.out)
        return
    load_before = os.getloadavg()[0]
    sides: dict[str, list[dict[str, object]]] = {"this": []}
    with tempfile.TemporaryDirectory(prefix="precdiff-bench-") as tmp:
        sources = [("this", ROOT)]
        if args.baseline:
            sides["baseline"] = []
            sources.append(("baseline", _unpack(args.baseline, Path(tmp) / "baseline")))
        for round_index in range(args.rounds):
            # Alternate which version goes first, so that neither always runs after the other.
            for label, source in sources[:: 1 if round_index % 2 == 0 else -1]:
                sides[label].append(_run_side(source, args.tokens, args.repeats, modes))
    report: dict[str, object] = {
        **_report_head("op_tracer_host", load_before, args.tokens),
        "this": _summary(sides["this"], modes),
    }
    if args.baseline:
        report["baseline"] = {"revision": args.baseline, **_summary(sides["baseline"], modes)}
    print(f"op tracer host time: {report['model']}, {args.tokens} tokens")
    print(f"{'version':<10}{'mode':<10}{'median ms':>11}{'µs/op':>9}{'min ms':>9}{'µs/op':>9}")
    for label in sides:
        side = report[label]
        assert isinstance(side, dict)
        for mode in modes:
            cells = ""
            for statistic in ("median", "min"):
                per_op = side[f"{statistic}_us_per_op"].get(mode)
                cells += f"{side[f'{statistic}_s'][mode] * 1e3:>{11 if statistic == 'median' else 9}.1f}"
                cells += f"{per_op:>9.1f}" if per_op is not None else f"{'':>9}"
            print(f"{label:<10}{mode:<10}{cells}")
        for statistic in ("median", "min"):
            if f"{statistic}_sink_writer_us_per_op" in side:
                print(
                    f"{label:<10}sink + writer µs/op ({statistic}): {side[f'{statistic}_sink_writer_us_per_op']:.1f}"
                )
            for mode, tail in side[f"tail_{statistic}_ms"].items():
                print(f"{label:<10}{mode} tail, flush + finish ({statistic}): {tail:.2f} ms")
    if args.baseline:
        this, base = report["this"], report["baseline"]
        assert isinstance(this, dict) and isinstance(base, dict)
        ratios = {
            statistic: {
                mode: base[f"{statistic}_us_per_op"][mode] / this[f"{statistic}_us_per_op"][mode]
                for mode in this[f"{statistic}_us_per_op"]
            }
            for statistic in ("median", "min")
        }
        report["us_per_op_ratio_baseline_to_this"] = ratios
        # The same op-level capture written by both versions: the optimisations change no stored byte.
        report["same_content"] = this["op_capture_digest"] == base["op_capture_digest"]
        print(f"same file content (index rows, sketches, checksums): {report['same_content']}")
        for mode in ratios["median"]:
            print(
                f"{mode}: baseline / this µs per op = {ratios['median'][mode]:.2f} (medians), "
                f"{ratios['min'][mode]:.2f} (minima)"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
