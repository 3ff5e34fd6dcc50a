"""End-to-end cost of batch-invariant mode: an 8B-shaped random Llama, bf16, one GPU.

Usage::

    python benchmarks/e2e_batch_invariant.py --out e2e.json               # 32 layers (8B shape)
    python benchmarks/e2e_batch_invariant.py --layers 2 --out smoke.json  # smoke run

One run = a 2,048-token prefill (batch 1) then 64 greedy decode steps with a DynamicCache. Standard
mode uses SDPA and cuBLAS; batch-invariant mode uses ``precdiff_batch_invariant`` attention inside
``batch_invariant_mode("cuda")``. Reported: median seconds over ``--runs`` (after one warm-up run)
for prefill and for the decode steps (the two modes alternate run by run), and the ratio batch-invariant / standard. Weights are random
(seeded), so the tokens mean nothing; the shapes are Llama-3-8B's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch


def _run(model: Any, ids: torch.Tensor, steps: int) -> tuple[float, float, list[int]]:
    from transformers import DynamicCache

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    cache = DynamicCache(config=model.config)
    out = model(ids, past_key_values=cache, use_cache=True)
    tok = out.logits[:, -1].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    tokens = []
    for _ in range(steps):
        out = model(tok, past_key_values=cache, use_cache=True)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(tok)
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, [int(t) for t in torch.cat(tokens).flatten().tolist()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from transformers import LlamaConfig, LlamaForCausalLM

    from precdiff.kernels import ATTENTION_IMPLEMENTATION, batch_invariant_mode, register_attention

    register_attention()
    cfg = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=args.layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        rope_theta=500000.0,
    )  # type: ignore[call-arg]  # accepted as a legacy kwarg
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # build the 8B weights directly in bf16 (16 GB, not 32)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    ids = torch.randint(0, cfg.vocab_size, (1, args.prefill), device="cuda")
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "layers": args.layers,
        "prefill": args.prefill,
        "decode": args.decode,
    }
    times: dict[str, list[tuple[float, float, list[int]]]] = {"standard": [], "batch_invariant": []}
    with torch.no_grad():
        # Modes alternate run by run, so a drift in the host's speed hits both alike.
        for i in range(args.runs + 1):
            for mode, done in times.items():
                model.set_attn_implementation("sdpa" if mode == "standard" else ATTENTION_IMPLEMENTATION)
                if mode == "standard":
                    r = _run(model, ids, args.decode)
                else:
                    with batch_invariant_mode("cuda"):
                        r = _run(model, ids, args.decode)
                if i:  # run 0 is the warm-up (Triton compiles on first use)
                    done.append(r)
    for mode, runs in times.items():
        pre = statistics.median(t[0] for t in runs)
        dec = statistics.median(t[1] for t in runs)
        results[mode] = {
            "prefill_s": pre,
            "decode_s": dec,
            "total_s": pre + dec,
            "tokens": runs[0][2][:16],
            "runs": [[t[0], t[1]] for t in runs],
        }
        print(
            f"{mode:16} prefill {pre:.3f}s  decode {args.decode} steps {dec:.3f}s  total {pre + dec:.3f}s",
            flush=True,
        )
    for key in ("prefill_s", "decode_s", "total_s"):
        results[f"ratio_{key.removesuffix('_s')}"] = (
            results["batch_invariant"][key] / results["standard"][key]
        )
    print(
        f"ratio batch-invariant / standard: prefill {results['ratio_prefill']:.3f}x, decode "
        f"{results['ratio_decode']:.3f}x, total {results['ratio_total']:.3f}x (target <= 1.25x)"
    )
    # Eager decoding is bound by the host, and a shared host drifts run to run: the fastest run of
    # each mode is the least disturbed estimate, so its ratio is reported too.
    fastest = {mode: min(t[0] + t[1] for t in runs) for mode, runs in times.items()}
    results["ratio_total_fastest_runs"] = fastest["batch_invariant"] / fastest["standard"]
    print(
        f"fastest runs: standard {fastest['standard']:.3f}s, batch-invariant {fastest['batch_invariant']:.3f}s, "
        f"ratio {results['ratio_total_fastest_runs']:.3f}x",
        flush=True,
    )
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
