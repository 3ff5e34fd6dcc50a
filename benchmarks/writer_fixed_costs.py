"""The capture writer's costs that do not scale with tensor bytes, on the CPU (no model, no GPU):

- ``open_finish``: ms to create a capture file and to finish it (``CaptureWriter`` then ``finish``), with
  ``--baseline FOLDER`` (benchmarks/baseline_package.py) for another revision's writer, alternated in
  this process;
- ``attribute``: ms per root attribute made by h5py's ``attrs[name] = value`` against
  store/h5io.py's ``new_attribute``;
- ``index_rows``: µs per row of appending 256 rows to an index-like dataset, by how many of its fields
  are variable-length strings (filled or empty), and for the real index dtype with its strings given
  to HDF5 as Python objects or as fixed-length bytes (HDF5 then converts them itself), with and
  without building the array from the row tuples (``*_built``): where the time of an index append goes;
  and the writer's own path (store/index_rows.py): columns, strings as addresses into one buffer;
- ``writer_thread``: a thread appending index rows while this thread runs Python, both measured for a
  second: the thread's appends against its rate alone, and this thread's share of its own speed.
  h5py holds the GIL during HDF5 calls, so a writer thread cannot take index appends off the capture.

    PYTHONPATH=$PWD python benchmarks/writer_fixed_costs.py --baseline /tmp/base \\
        --out benchmarks/results/writer_fixed_costs_cpu.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import baseline_package

from precdiff.store import format as fmt
from precdiff.store.h5io import append_rows, new_attribute
from precdiff.store.index_rows import IndexRows

ROWS = 256
ROUNDS = 21
NAME = "model.layers.1.self_attn/aten.mm.default#3"
_ROW = (
    NAME, "model.layers.1.self_attn", "output", "bf16", 3, [1, 2, 3, -1, -1, -1, -1, -1], 6, False,
    [0.1] * 7, "op_output", 1, '["model.layers.1.input_layernorm/aten.mul.Tensor#1"]', "", "", "",
)  # fmt: skip


def median_ms(run: Callable[[], None], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def open_finish(folder: Path, baseline: Path | None) -> dict[str, dict[str, float]]:
    packages = {"this": "precdiff"}
    if baseline is not None:
        baseline_package.load(baseline)
        packages["baseline"] = baseline_package.NAME
    writers = {side: importlib.import_module(f"{pkg}.store").CaptureWriter for side, pkg in packages.items()}
    times: dict[str, tuple[list[float], list[float]]] = {side: ([], []) for side in writers}
    for round_ in range(ROUNDS * 3):
        for side, writer_class in writers.items():
            start = time.perf_counter()
            writer = writer_class(folder / f"{side}{round_}.h5")
            opened = time.perf_counter()
            writer.finish()
            finished = time.perf_counter()
            times[side][0].append(opened - start)
            times[side][1].append(finished - opened)
    return {
        side: {"open_ms": statistics.median(o) * 1e3, "finish_ms": statistics.median(f) * 1e3}
        for side, (o, f) in times.items()
    }


def attribute(folder: Path) -> dict[str, float]:
    values: list[tuple[str, Any]] = [
        ("a", "precdiff-capture"),
        ("b", 2),
        ("c", False),
        ("d", "0.1.0"),
        ("e", "x" * 25),
    ]
    out = {}
    for how in ("h5py_setitem", "new_attribute"):
        files = [h5py.File(folder / f"{how}{i}.h5", "w") for i in range(ROUNDS)]
        times = []
        for handle in files:
            start = time.perf_counter()
            for name, value in values:
                if how == "h5py_setitem":
                    handle.attrs[name] = value
                else:
                    new_attribute(handle.id, name, value)
            times.append((time.perf_counter() - start) / len(values))
            handle.close()
        out[f"{how}_ms"] = statistics.median(times) * 1e3
    return out


def _append_us(folder: Path, label: str, dtype: np.dtype, rows: np.ndarray) -> float:
    with h5py.File(folder / f"{label}.h5", "w") as handle:
        dataset = handle.create_dataset("index", shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
        memory = h5py.h5t.py_create(rows.dtype)
        return median_ms(lambda: append_rows(dataset, rows, memory)) * 1e3 / len(rows)


def index_rows(folder: Path) -> dict[str, float]:
    text = h5py.string_dtype(encoding="utf-8")
    out = {}
    for strings in (0, 1, 5, 10):
        for filled in (True, False) if strings else (True,):
            dtype = np.dtype([(f"s{i}", text) for i in range(strings)] + [("stats", np.float64, (7,))])
            rows = np.empty(ROWS, dtype=dtype)
            for i in range(strings):
                rows[f"s{i}"] = NAME if filled else ""
            label = f"{strings}_strings_{'filled' if filled else 'empty'}"
            out[label] = _append_us(folder, label, dtype, rows)
    index = fmt.index_dtype()
    tuples = [_ROW] * ROWS
    objects = np.array(tuples, dtype=index)
    out["index_dtype_python_strings"] = _append_us(folder, "objects", index, objects)
    fixed = _fixed_width(index, tuples)
    out["index_dtype_fixed_length_bytes"] = _append_us(folder, "fixed", index, np.array(tuples, dtype=fixed))
    # The same two, each timed with the array built from the row tuples, as flush_index must
    for label, make in (
        ("index_dtype_python_strings_built", lambda: np.array(tuples, dtype=index)),
        ("index_dtype_fixed_length_bytes_built", lambda: np.array(tuples, dtype=_fixed_width(index, tuples))),
    ):
        with h5py.File(folder / f"{label}.h5", "w") as handle:
            dataset = handle.create_dataset("index", shape=(0,), maxshape=(None,), dtype=index, chunks=(256,))

            def built(make: Callable[[], np.ndarray] = make, dataset: h5py.Dataset = dataset) -> None:
                rows = make()
                append_rows(dataset, rows, h5py.h5t.py_create(rows.dtype))

            out[label] = median_ms(built) * 1e3 / ROWS
    # store/index_rows.py's path: the rows handed over as columns, their strings as addresses into one
    # buffer (HDF5 copies them itself); built, then appended, as the writer's flush_index does.
    buffer = IndexRows(index)
    columns = {
        name: [value] * ROWS for name, value in zip(index.names, _ROW, strict=True) if name != fmt.T_STATS
    }
    stats = np.array([_ROW[index.names.index(fmt.T_STATS)]] * ROWS, dtype=np.float64)
    with h5py.File(folder / "addresses.h5", "w") as handle:
        dataset = handle.create_dataset("index", shape=(0,), maxshape=(None,), dtype=index, chunks=(256,))

        def build() -> tuple[np.ndarray, bytes]:
            buffer.clear()
            buffer.add(columns, stats)
            rows, texts, _ = buffer.build()
            return rows, texts

        def addresses() -> None:
            rows, texts = build()
            append_rows(dataset, rows, buffer.memory_type)
            del texts  # the rows' string addresses point into it until the append

        out["index_dtype_addresses_build_only"] = median_ms(build) * 1e3 / ROWS  # type: ignore[arg-type]
        out["index_dtype_addresses_built"] = median_ms(addresses) * 1e3 / ROWS
    return out


def _fixed_width(index: np.dtype, rows: list[tuple[Any, ...]]) -> np.dtype:
    """``index`` with each string field as fixed-length bytes as wide as its longest value in ``rows``."""
    return np.dtype(
        [
            (name, f"S{max(len(row[i]) for row in rows) or 1}" if index[name].kind == "O" else index[name])
            for i, name in enumerate(index.names)
        ]
    )


def writer_thread(folder: Path) -> dict[str, float]:
    index = fmt.index_dtype()
    rows = np.array([_ROW] * ROWS, dtype=index)
    with h5py.File(folder / "thread.h5", "w") as handle:
        dataset = handle.create_dataset("index", shape=(0,), maxshape=(None,), dtype=index, chunks=(256,))
        memory = h5py.h5t.py_create(index)
        done, stop = [0], [False]

        def appends() -> None:
            while not stop[0]:
                append_rows(dataset, rows, memory)
                done[0] += 1

        def spin(seconds: float) -> int:
            count, end = 0, time.perf_counter() + seconds
            while time.perf_counter() < end:
                count += 1
            return count

        alone_start = time.perf_counter()
        for _ in range(50):
            append_rows(dataset, rows, memory)
        alone_per_s = 50 / (time.perf_counter() - alone_start)
        spin_alone = spin(1.0)
        thread = threading.Thread(target=appends)
        thread.start()
        spin_shared = spin(1.0)
        stop[0] = True
        thread.join()
    return {
        "thread_appends_per_s_alone": alone_per_s,
        "thread_appends_in_1s_beside_python": float(done[0]),
        "thread_share_of_its_rate": done[0] / alone_per_s,
        "main_thread_share_of_its_speed": spin_shared / spin_alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report = {
            "benchmark": "writer_fixed_costs",
            "date": date.today().isoformat(),
            "cpu": platform.processor() or platform.machine(),
            "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version,
            "baseline": str(args.baseline) if args.baseline else None,
            "open_finish": open_finish(folder, args.baseline),
            "attribute": attribute(folder),
            "index_rows_us_per_row": index_rows(folder),
            "writer_thread": writer_thread(folder),
        }
    print(json.dumps(report, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
