"""Fused attention kernels of one device type replay elsewhere through the composite SDPA op."""

from __future__ import annotations

import pytest
import torch

from precdiff.replay.aten_call import CallError, pick, portable_attention, run_call


def _qkv() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(1, 4, 7, 16, generator=g) for _ in range(3))  # type: ignore[return-value]


def test_cpu_flash_kernel_output_equals_the_composite_op() -> None:
    q, k, v = _qkv()
    fused = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default(q, k, v, 0.0, True)[0]
    (portable,) = portable_attention(
        "aten._scaled_dot_product_flash_attention_for_cpu.default", [q, k, v, 0.0, True], {}
    )
    torch.testing.assert_close(portable, fused, rtol=1e-6, atol=1e-6)


def test_a_cuda_only_kernel_replays_on_the_cpu_and_its_other_outputs_refuse() -> None:
    """The memory-efficient kernel has no CPU implementation: run_call falls back, binding its
    arguments (attn_bias, compute_log_sumexp, dropout_p, is_causal) by name from its schema."""
    q, k, v = _qkv()
    call = {
        "op": "aten._scaled_dot_product_efficient_attention.default",
        "inputs": [{}, {}, {}],
        "args": [{"t": 0}, {"t": 1}, {"t": 2}, None, False, 0.0, True],
        "kwargs": {},
    }
    output = run_call(call, [q, k, v], lambda dtype: dtype, torch.device("cpu"))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(pick(output, [0]), expected, rtol=0, atol=0)
    with pytest.raises(CallError, match=r"output \[1\] exists only in the captured device's fused kernel"):
        pick(output, [1])
