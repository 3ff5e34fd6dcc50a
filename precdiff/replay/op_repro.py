"""``replay --emit-repro DIR`` of one aten op: a standalone reproducer for a vendor bug report.

``DIR`` receives ``repro.py`` and ``inputs.safetensors``: ``input<i>``, the base of each tensor input
as it was in the run (the producer's stored values, the parameter, the constant; in the run's dtypes),
and ``captured``, the captured output. The script carries the recorded call as JSON and the source of
:mod:`precdiff.replay.aten_call` (plain torch), so it rebuilds each input exactly as ``replay`` does
(layout, then view ops) and calls ``torch.ops.aten.<op>.<overload>``. Never pickle; each file is
written to a temporary name and renamed into place.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

from precdiff.errors import InputError
from precdiff.replay import aten_call
from precdiff.replay.op_replay import OpReplayed
from precdiff.replay.repro import result_fields, write_text
from precdiff.replay.results import ReplayResult

_MAIN = r'''

META = json.loads(r"""{meta}""")
HERE = pathlib.Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description="Replays " + META["call_name"] + " here and in float64.")
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default, help="cpu, cuda[:i] or npu[:i] (default " + default + ")")
    parser.add_argument("--dtype", default=META["dtype"], help="default " + META["dtype"] + ", the captured run's")
    args = parser.parse_args()
    if args.device.startswith("npu"):
        import torch_npu  # noqa: F401  (registers the npu device)
    run_dtype, dtype = getattr(torch, META["dtype"]), getattr(torch, args.dtype)
    tensors = load_file(str(HERE / "inputs.safetensors"))
    captured = tensors.pop("captured")
    bases = [tensors["input%d" % i] for i in range(len(META["call"]["inputs"]))]
    with torch.no_grad():
        ref = pick(run_call(META["call"], bases, to_float64, torch.device("cpu")), META["output"])
        here = pick(
            run_call(META["call"], bases, lambda d: dtype if d == run_dtype else d, torch.device(args.device)),
            META["output"],
        )
    print("op: %s (%s) from %s" % (META["call_name"], META["call"]["op"], META["run"]))
    print("captured output vs float64: rel-L2 %.6e" % rel_l2(ref, captured))
    print("%s %s vs float64: rel-L2 %.6e" % (args.device, args.dtype, rel_l2(ref, here)))
    print(
        "precdiff reported: captured vs float64 %.6e, %s %s vs float64 %.6e"
        % (META["captured_vs_reference"], META["device"], META["replay_dtype"], META["here_vs_reference"])
    )


if __name__ == "__main__":
    main()
'''

_HEADER = '''#!/usr/bin/env python3
"""Minimal reproducer written by `precdiff replay --emit-repro` (https://github.com/precdiff).

Op: {call_name} ({op}) from the capture {run}.
It rebuilds the op's inputs from inputs.safetensors (each input's base, then the recorded layout and
view ops), calls the aten op once in float64 on the CPU (the reference) and once on --device in --dtype,
and prints the relative L2 error (||x - ref|| / ||ref||) of the captured output and of this run.

Needs: torch, safetensors (and torch_npu for --device npu). Usage:
    python repro.py [--device cpu|cuda|npu] [--dtype {dtype}]
"""

import argparse
import json
import pathlib

import torch
from safetensors.torch import load_file
'''


def _library() -> str:
    """The source of :mod:`aten_call` without its ``__future__`` import (only allowed first in a file)."""
    lines = inspect.getsource(aten_call).splitlines()
    return "\n".join(line for line in lines if not line.startswith("from __future__"))


def emit_op_repro(directory: str | os.PathLike[str], result: ReplayResult, replayed: OpReplayed) -> Path:
    """Write the reproducer of ``result``'s op into ``directory`` (created if needed).

    Raises:
        InputError: ``directory`` is an existing file.
    """
    from safetensors.torch import save_file

    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise InputError(f"--emit-repro {target} is a file; give a directory (created if missing)")
    target.mkdir(parents=True, exist_ok=True)
    # Clones: safetensors refuses tensors sharing memory (one parameter referenced twice).
    tensors = {f"input{i}": base.detach().contiguous().clone() for i, base in enumerate(replayed.bases)}
    tensors["captured"] = replayed.captured.contiguous()
    meta = {
        "call": replayed.call,
        "call_name": result.call,
        "output": replayed.path,
        "inputs": list(replayed.refs),
        **result_fields(result),
    }
    temporary = target / "inputs.safetensors.partial"
    save_file(tensors, str(temporary))
    os.replace(temporary, target / "inputs.safetensors")
    header = _HEADER.format(
        call_name=result.call, op=replayed.call["op"], run=Path(result.run).name, dtype=result.captured_dtype
    )
    script = header + _library() + _MAIN.replace("{meta}", json.dumps(meta, indent=1))
    write_text(script, target / "repro.py")
    return target
