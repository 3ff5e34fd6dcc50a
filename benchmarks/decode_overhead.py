"""Host cost of batch-invariant mode in decode, where Hugging Face eager decoding is CPU-bound.

Usage::

    python benchmarks/decode_overhead.py --out decode.json                # ops + decode steps
    python benchmarks/decode_overhead.py --profile prof.txt --out d.json  # ... + cProfile of BI decode

A decode step of an 8B model at batch 1 is ~5 ms of GPU work behind ~25 ms of Python in eager
``transformers``; every overridden op adds a Python call (dispatcher -> wrapper -> Triton launch)
where the standard op stays in C++. Reported, standard vs batch-invariant:

* per op, microseconds per call over 2,000 back-to-back calls (then one sync), for the ops a decode
  step reaches: Linear at M = 1 (q/o-proj and down-proj shapes), the RMSNorm mean, attention at
  one query over a 2,048-key cache;
* per decode step of an 8B-shaped Llama (``--layers`` of its 32, a 2,048-token prompt): milliseconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


def _per_call_us(fn: Callable[[], Any], calls: int = 2000) -> float:
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def op_costs() -> dict[str, dict[str, float]]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from precdiff.kernels import batch_invariant_attention, batch_invariant_mode

    dev, bf16 = "cuda", torch.bfloat16
    x = torch.randn(1, 1, 4096, device=dev, dtype=bf16)
    x_down = torch.randn(1, 1, 14336, device=dev, dtype=bf16)
    w_q = torch.randn(4096, 4096, device=dev, dtype=bf16) / 64
    w_down = torch.randn(4096, 14336, device=dev, dtype=bf16) / 120
    h32 = torch.randn(1, 1, 4096, device=dev, dtype=torch.float32)
    q = torch.randn(1, 32, 1, 128, device=dev, dtype=bf16)
    k = torch.randn(1, 8, 2048, 128, device=dev, dtype=bf16)
    v = torch.randn(1, 8, 2048, 128, device=dev, dtype=bf16)
    module = torch.nn.Module()
    module.is_causal = True  # type: ignore[assignment]
    module.num_key_value_groups = 4  # type: ignore[assignment]
    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "linear 1x4096 @ 4096x4096": (lambda: torch.nn.functional.linear(x, w_q),) * 2,
        "linear 1x14336 @ 14336x4096": (lambda: torch.nn.functional.linear(x_down, w_down),) * 2,
        "rmsnorm mean [1,1,4096] fp32": (lambda: h32.pow(2).mean(-1, keepdim=True),) * 2,
        "attention 1 query, 2048 keys": (
            lambda: sdpa_attention_forward(module, q, k, v, None),
            lambda: batch_invariant_attention(module, q, k, v, None),
        ),
    }
    res: dict[str, dict[str, float]] = {}
    for name, (standard, invariant) in cases.items():
        std = _per_call_us(standard)
        with batch_invariant_mode("cuda"):
            bi = _per_call_us(invariant)
        res[name] = {"standard_us": std, "batch_invariant_us": bi, "extra_us": bi - std}
        print(
            f"{name:32} standard {std:7.1f} us  batch-invariant {bi:7.1f} us  (+{bi - std:.1f})", flush=True
        )
    return res


def host_costs() -> dict[str, float]:
    """Host microseconds per call of each layer of the GEMM launch path, on a 1x64 @ 64x64 GEMM
    (a few microseconds of GPU work, so every variant is bound by the host)."""
    import triton

    from precdiff.kernels import batch_invariant_mode, triton_gemm, triton_launch

    x = torch.randn(1, 64, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(64, 64, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(1, 64, device="cuda", dtype=torch.bfloat16)
    b = w.t()
    args = (
        x,
        b,
        out,
        out,
        1,
        64,
        64,
        0,
        64,
        1,
        0,
        *b.stride(),
        0,
        64,
        1,
        0,
        64,
        1,
        1.0,
        1.0,
        False,
        False,
        True,
        16,
        64,
        64,
        8,
    )
    opts = {"num_warps": 4, "num_stages": 3}
    kernel = triton_gemm._mm_kernel
    compiled = kernel[(1, 1)](*args, **opts)
    knobs = getattr(triton, "knobs", None)
    enter = knobs.runtime.launch_enter_hook if knobs else None
    leave = knobs.runtime.launch_exit_hook if knobs else None
    stream = torch.cuda.current_stream().cuda_stream
    variants: dict[str, Callable[[], Any]] = {
        "aten F.linear (cuBLAS)": lambda: torch.nn.functional.linear(x, w),
        "triton kernel[grid](...)": lambda: kernel[(1, 1)](*args, **opts),
        "precdiff launch() cache": lambda: triton_launch.launch(kernel, (1, 1), *args, tensors=4, **opts),
        "CompiledKernel[grid](...)": lambda: compiled[(1, 1, 1)](*args),
        "CompiledKernel.run(...)": lambda: compiled.run(
            1, 1, 1, stream, compiled.function, compiled.packed_metadata, None, enter, leave, *args
        ),
        "triton_gemm.matmul": lambda: triton_gemm.matmul(x, b),
    }
    res = {name: _per_call_us(fn, 5000) for name, fn in variants.items()}
    with batch_invariant_mode("cuda"):
        res["F.linear in batch-invariant mode"] = _per_call_us(lambda: torch.nn.functional.linear(x, w), 5000)
    for name, us in res.items():
        print(f"host {name:36} {us:6.1f} us/call", flush=True)
    return res


def _decode(model: Any, ids: torch.Tensor, steps: int) -> float:
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    out = model(ids, past_key_values=cache, use_cache=True)
    tok = out.logits[:, -1].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        out = model(tok, past_key_values=cache, use_cache=True)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps * 1e3


def decode_steps(layers: int, prefill: int, steps: int, profile: str | None) -> dict[str, Any]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from precdiff.kernels import ATTENTION_IMPLEMENTATION, batch_invariant_mode, register_attention

    register_attention()
    cfg = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    ids = torch.randint(0, cfg.vocab_size, (1, prefill), device="cuda")
    res: dict[str, Any] = {"layers": layers, "prefill": prefill, "steps": steps}
    with torch.no_grad():
        for mode in ("standard", "batch_invariant"):
            model.set_attn_implementation("sdpa" if mode == "standard" else ATTENTION_IMPLEMENTATION)
            runs = []
            for _ in range(4):
                if mode == "standard":
                    runs.append(_decode(model, ids, steps))
                else:
                    with batch_invariant_mode("cuda"):
                        runs.append(_decode(model, ids, steps))
            res[f"{mode}_ms_per_step"] = statistics.median(runs[1:])
            print(
                f"{mode:16} {res[f'{mode}_ms_per_step']:.2f} ms per decode step ({layers} layers)", flush=True
            )
        res["ratio"] = res["batch_invariant_ms_per_step"] / res["standard_ms_per_step"]
        print(f"decode step ratio {res['ratio']:.3f}x", flush=True)
        if profile:
            prof = cProfile.Profile()
            with batch_invariant_mode("cuda"):
                prof.enable()
                _decode(model, ids, steps)
                prof.disable()
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(40)
            with open(profile, "w") as fh:
                fh.write(text.getvalue())
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--profile", help="write a cProfile of batch-invariant decode steps here")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    report["host"] = host_costs()
    report["ops"] = op_costs()
    report["decode"] = decode_steps(args.layers, args.prefill, args.steps, args.profile)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
