"""Sweep the summary kernel's launch shape (rows per step TR, programs GRID, warps) on the 8B shape's
bf16 tensors: device µs per call, registers and spills per configuration; chooses
capture/summary_triton.py's LAUNCH.

    PYTHONPATH=$PWD python benchmarks/sweep_summary_kernel.py > kernel_sweep.txt
"""

import torch

from precdiff.capture import summary_triton as st
from precdiff.capture.sketch import SIGN_BIT, WIDTH

dev = torch.device("cuda")
shapes = [(2048, 14336), (2048, 4096), (2048, 1024)]
xs = {s: torch.randn(s, device=dev).to(torch.bfloat16) for s in shapes}
arena = st.FusedSummaries(dev)
for sk in (True, False):
    for tr in (2, 4, 8, 16):
        for grid in (264, 528, 1056, 2112):
            for warps in (4, 8):
                parts = torch.empty((grid, st.ROW), dtype=torch.float64, device=dev)
                checks = torch.empty(grid, dtype=torch.int64, device=dev)
                res = []
                compiled = None
                for s in shapes:
                    x = xs[s]
                    n = x.numel()
                    rows = -(-n // WIDTH)
                    tiles = -(-rows // tr)
                    mixes = arena._row_mixes(rows)
                    args = (
                        x,
                        mixes,
                        parts,
                        checks,
                        n,
                        rows,
                        -(-tiles // grid),
                        WIDTH,
                        tr,
                        grid,
                        st.ROW,
                        SIGN_BIT,
                        16,
                        sk,
                    )
                    try:
                        compiled = st._summary_kernel[(grid,)](*args, num_warps=warps)
                    except Exception as e:
                        res.append(f"ERR {type(e).__name__}")
                        break
                    torch.cuda.synchronize()
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    for _ in range(20):
                        st._summary_kernel[(grid,)](*args, num_warps=warps)
                    b.record()
                    torch.cuda.synchronize()
                    us = a.elapsed_time(b) * 1e3 / 20
                    res.append(f"{us:7.1f}us {n * 2 / us / 1e3:6.0f}GB/s")
                regs = getattr(compiled, "n_regs", "?")
                spills = getattr(compiled, "n_spills", "?")
                print(
                    f"sketch={sk:d} TR={tr:2d} GRID={grid:4d} warps={warps} regs={regs} spills={spills} | "
                    + " | ".join(res),
                    flush=True,
                )
