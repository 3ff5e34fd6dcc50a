"""Sweep the summary kernel's launch shape (programs GRID, rows per step TR, warps, elements of a
row summed together for the checksum VEC) on the 8B shape's bf16 tensors, with and without the
sketch: device µs and GB/s per call (CUDA-graph replays, so no launch cost), registers and spills
per configuration, next to a torch sum of the same tensor (a plain streaming read); chooses
capture/summary_triton.py's LAUNCH. ``--best FILE`` writes the fastest sketch configuration (least
total µs over the shapes) as ``GRID,TR,WARPS,VEC``. (The session-4 sweeps also compared the
kernel with and without its loads running a step ahead, and VEC 8 / 16 / 256.)

    PYTHONPATH=$PWD python benchmarks/sweep_summary_kernel.py > kernel_sweep.txt
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from pathlib import Path

import torch
import triton.language as tl

from precdiff.capture import summary_triton as st
from precdiff.capture.sketch import SIGN_BIT, WIDTH
from precdiff.capture.summary_kernels import summary_kernel

SHAPES = [(2048, 14336), (2048, 4096), (2048, 1024), (2048, 128)]
CALLS = 20


def device_us(run: Callable[[], object]) -> float:
    """Device µs per call of ``run``: CALLS calls captured in a CUDA graph, replayed between two events."""
    run()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(CALLS):
            run()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / CALLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--best", type=Path, default=None)
    args = parser.parse_args()
    dev = torch.device("cuda")
    xs = {s: torch.randn(s, device=dev).to(torch.bfloat16) for s in SHAPES}
    print("torch sum | " + " | ".join(f"{s}: {device_us(lambda x=x: x.sum()):7.1f}us" for s, x in xs.items()))
    shapes = {
        True: itertools.product((256, 512, 1024), (2, 4, 8), (4, 8), (8, 16)),
        False: itertools.product((528, 1056, 2112), (2, 4, 8), (4, 8), (WIDTH,)),
    }
    best: tuple[float, str] | None = None
    for sketch in (True, False):
        for grid, rows, warps, vec in shapes[sketch]:
            parts = torch.empty((grid, st.ROW), dtype=torch.float64, device=dev)
            checks = torch.empty(grid, dtype=torch.int64, device=dev)
            cells, compiled, total = [], None, 0.0
            for x in xs.values():
                n = x.numel()
                tables = st.row_tables(dev, n // WIDTH + 1)
                call = (
                    x, x, tables.mixes, tables.perm, tables.start, tables.below, parts, checks, n, n // WIDTH,
                    WIDTH, rows, grid, st.ROW, st.BLOCK_ROWS, SIGN_BIT, 16, sketch, False, tl.float32, vec, False,
                )  # fmt: skip
                try:
                    compiled = summary_kernel[(grid,)](*call, num_warps=warps)
                    us = device_us(lambda a=call, g=grid, w=warps: summary_kernel[(g,)](*a, num_warps=w))
                except Exception as exc:  # a shape the compiler refuses (registers, shared memory)
                    cells.append(f"ERR {type(exc).__name__}: {str(exc)[:80]}")
                    total = float("inf")
                    break
                total += us
                cells.append(f"{us:7.1f}us {n * 2 / us / 1e3:6.0f}GB/s")
            regs = getattr(compiled, "n_regs", "?")
            spills = getattr(compiled, "n_spills", "?")
            print(
                f"sketch={sketch:d} GRID={grid:4d} TR={rows} warps={warps} VEC={vec:3d} regs={regs} "
                f"spills={spills} | " + " | ".join(cells),
                flush=True,
            )
            if sketch and (best is None or total < best[0]):
                best = (total, f"{grid},{rows},{warps},{vec}")
    if best is not None:
        print(f"best sketch launch: {best[1]} ({best[0]:.1f} us over the shapes)")
        if args.best is not None:
            args.best.write_text(best[1])


if __name__ == "__main__":
    main()
