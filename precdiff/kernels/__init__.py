"""Batch-invariant kernels: the same request gives the same bits whatever batch it rides in.

Public API::

    from precdiff.kernels import batch_invariant_mode, KernelSettings, ATTENTION_IMPLEMENTATION

    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=ATTENTION_IMPLEMENTATION)
    with batch_invariant_mode("cuda") as settings:
        logits = model(ids).logits
    manifest["kernels"] = settings.to_dict()

``import precdiff.kernels`` imports neither triton nor torch_npu; triton is imported when the mode is
entered for a CUDA device. See ``docs/kernels.md`` for what is overridden and what is guaranteed.
"""

from __future__ import annotations

from precdiff.kernels.attention import ATTENTION_IMPLEMENTATION, batch_invariant_attention, register_attention
from precdiff.kernels.mode import KernelSettings, active_dispatch_keys, batch_invariant_mode

__all__ = [
    "ATTENTION_IMPLEMENTATION",
    "KernelSettings",
    "active_dispatch_keys",
    "batch_invariant_attention",
    "batch_invariant_mode",
    "register_attention",
]
