#!/usr/bin/env python3
"""Minimal reproducer written by `precdiff replay --emit-repro` (https://github.com/precdiff).

Module: model.layers.15.mlp.down_proj (Linear, replayed as "linear") from the capture cuda_bf16.h5.
It re-runs the module from the inputs it received in that run (inputs.safetensors) with its weights
(weights.safetensors), once in float64 on the CPU (the reference) and once on --device in --dtype,
and prints the relative L2 error (||x - ref|| / ||ref||) of the captured output and of this run.

Needs: torch, safetensors (and torch_npu for --device npu). Usage:
    python repro.py [--device cpu|cuda|npu] [--dtype bfloat16]
"""

import argparse
import json
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

META = json.loads(r"""{
 "kind": "linear",
 "module": "model.layers.15.mlp.down_proj",
 "run": "cuda_bf16.h5",
 "dtype": "bfloat16",
 "device": "cuda:0",
 "replay_dtype": "bfloat16",
 "captured_vs_reference": 0.0023414428535268564,
 "here_vs_reference": 0.0023414428535268564
}""")
HERE = pathlib.Path(__file__).resolve().parent
ACTIVATIONS = {
    "silu": F.silu,
    "swish": F.silu,
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "gelu_new": lambda t: F.gelu(t, approximate="tanh"),
}


def upcast(t):
    # Low-precision models normalise and take softmax in float32; the float64 reference stays float64.
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def rms_norm(x, weight, eps):
    h = x.to(upcast(x))
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def attention(w, x, cos, sin, mask):
    batch, seq, _ = x.shape
    head_dim = META["head_dim"]
    q = F.linear(x, w["q_proj.weight"], w.get("q_proj.bias")).view(batch, seq, -1, head_dim).transpose(1, 2)
    k = F.linear(x, w["k_proj.weight"], w.get("k_proj.bias")).view(batch, seq, -1, head_dim).transpose(1, 2)
    v = F.linear(x, w["v_proj.weight"], w.get("v_proj.bias")).view(batch, seq, -1, head_dim).transpose(1, 2)
    if "q_norm.weight" in w:
        q = rms_norm(q, w["q_norm.weight"], META["qk_eps"])
        k = rms_norm(k, w["k_norm.weight"], META["qk_eps"])
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) * META["scaling"]
    if mask is None:  # the capture ran causal attention without a mask tensor
        keep = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    elif mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    else:
        scores = scores + mask
    probs = torch.softmax(scores.to(upcast(scores)), dim=-1).to(q.dtype)
    out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, seq, -1)
    return F.linear(out, w["o_proj.weight"], w.get("o_proj.bias"))


def forward(w, t):
    kind = META["kind"]
    x = t["x"]
    if kind == "linear":
        return F.linear(x, w["weight"], w.get("bias"))
    if kind == "rmsnorm":
        return rms_norm(x, w["weight"], META["eps"])
    if kind == "layernorm":
        return F.layer_norm(x, tuple(META["normalized_shape"]), w.get("weight"), w.get("bias"), META["eps"])
    if kind == "mlp":
        act = ACTIVATIONS[META["act"]]
        gate = F.linear(x, w["gate_proj.weight"], w.get("gate_proj.bias"))
        up = F.linear(x, w["up_proj.weight"], w.get("up_proj.bias"))
        return F.linear(act(gate) * up, w["down_proj.weight"], w.get("down_proj.bias"))
    return attention(w, x, t["cos"], t["sin"], t.get("attention_mask"))


def on(tensors, dtype, device, keep_captured_dtypes):
    out = {}
    for name, t in tensors.items():
        if t.is_floating_point() and not keep_captured_dtypes:
            t = t.to(dtype)
        out[name] = t.to(device)
    return out


def rel_l2(ref, x):
    return (torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref)).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default, help=f"cpu, cuda[:i] or npu[:i] (default {default})")
    parser.add_argument("--dtype", default=META["dtype"], help=f"default {META['dtype']}, the captured run's")
    args = parser.parse_args()
    if args.device.startswith("npu"):
        import torch_npu  # noqa: F401  (registers the npu device)
    dtype = getattr(torch, args.dtype)
    weights = load_file(str(HERE / "weights.safetensors"))
    inputs = load_file(str(HERE / "inputs.safetensors"))
    captured = inputs.pop("captured").to(torch.float64)
    with torch.no_grad():
        ref = forward(on(weights, torch.float64, "cpu", False), on(inputs, torch.float64, "cpu", False))
        same = args.dtype == META["dtype"]
        here = forward(on(weights, dtype, args.device, False), on(inputs, dtype, args.device, same))
    here = here.to("cpu", torch.float64)
    print(f"module: {META['module']} ({META['kind']}) from {META['run']}")
    print(f"captured output vs float64: rel-L2 {rel_l2(ref, captured):.6e}")
    print(f"{args.device} {args.dtype} vs float64: rel-L2 {rel_l2(ref, here):.6e}")
    print(
        f"precdiff reported: captured vs float64 {META['captured_vs_reference']:.6e}, "
        f"{META['device']} {META['replay_dtype']} vs float64 {META['here_vs_reference']:.6e}"
    )


if __name__ == "__main__":
    main()
