"""Row-level invariance and accuracy of the torch-level (CPU / NPU) batch-invariant kernels.

Each sweep computes a probe row inside calls of M = 1..64 and larger rows (at the first and at a
random slot) and counts the distinct bit patterns the probe gets. Batch-invariant mode must give one.
Each sweep is shown able to fail on a kernel that is batch dependent by construction
(``planted.round_by_rows``), never on the standard kernels: whether those are variant depends on the
CPU's SIMD width, its BLAS and the thread count, and CI runs on whatever CPU it gets.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from planted import round_by_rows

from precdiff.kernels import batch_invariant_mode

M_SWEEP = list(range(1, 65)) + [100, 257]


def _patterns(fn: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor, seed: int = 0) -> int:
    """Distinct bit patterns of fn's output row for ``probe`` over batches of M rows."""
    gen = torch.Generator().manual_seed(seed)
    seen = set()
    for m in M_SWEEP:
        x = torch.randn((m, probe.shape[0]), generator=gen).to(probe.dtype)
        slot = int(torch.randint(0, m, (1,), generator=gen))
        x[slot] = probe
        seen.add(fn(x)[slot].float().numpy().tobytes())
    return len(seen)


@pytest.mark.parametrize("k,n", [(64, 128), (256, 256), (1024, 512)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_linear_rows_are_batch_invariant(k: int, n: int, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    w = torch.randn(n, k).to(dtype)
    b = torch.randn(n).to(dtype)
    probe = torch.randn(k).to(dtype)
    assert _patterns(lambda x: round_by_rows(x @ w.t()), probe) > 1, "the sweep could not fail"
    with batch_invariant_mode("cpu"):
        assert _patterns(lambda x: x @ w.t(), probe) == 1
        assert _patterns(lambda x: torch.nn.functional.linear(x, w, b), probe) == 1
        assert _patterns(lambda x: torch.bmm(x[None], w.t()[None])[0], probe) == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_rmsnorm_reductions_are_batch_invariant(dtype: torch.dtype) -> None:
    # 65536-wide rows: standard torch splits a long row across threads only when rows are few.
    probe = torch.randn(65536).to(dtype)
    fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "rms": lambda x: x.float().pow(2).mean(-1, keepdim=True),
        "sum": lambda x: x.sum(-1),
    }
    assert _patterns(lambda x: round_by_rows(fns["rms"](x)), probe) > 1, "the sweep could not fail"
    with batch_invariant_mode("cpu"):
        assert {name: _patterns(fn, probe) for name, fn in fns.items()} == {"rms": 1, "sum": 1}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_softmax_rows_are_batch_invariant(dtype: torch.dtype) -> None:
    probe = (torch.randn(32000) * 4).to(dtype)
    with batch_invariant_mode("cpu"):
        assert _patterns(lambda x: torch.softmax(x, -1), probe) == 1
        assert _patterns(lambda x: torch.log_softmax(x.float(), -1), probe) == 1


def test_elementwise_activations_are_position_invariant() -> None:
    """Standard CPU sigmoid/silu/gelu can give different bits in the SIMD body and the scalar tail."""
    vals = torch.rand(3000) * 8 - 4

    def tail_vs_body(act: Callable[[torch.Tensor], torch.Tensor]) -> bool:
        body = act(vals[None])[0]
        tail = torch.cat([act(vals[i : i + 1][None])[0] for i in range(vals.numel())])
        return torch.equal(body, tail)

    silu = torch.nn.functional.silu
    assert not tail_vs_body(lambda v: round_by_rows(silu(v.T).T)), "the check could not fail"
    with batch_invariant_mode("cpu"):
        assert tail_vs_body(silu)


ACCURACY = [
    ("mm", lambda a, b: a @ b, lambda a, b: a @ b),
    (
        "addmm",
        lambda a, b: torch.addmm(b[0], a, b, beta=0.5, alpha=2.0),
        lambda a, b: 0.5 * b[0] + 2.0 * (a @ b),
    ),
    (
        "bmm",
        lambda a, b: torch.bmm(a.reshape(3, -1, a.shape[1]), b.expand(3, -1, -1)),
        lambda a, b: torch.bmm(a.reshape(3, -1, a.shape[1]), b.expand(3, -1, -1)),
    ),
    ("mean", lambda a, b: a.mean(-1), lambda a, b: a.mean(-1)),
    ("sum_dim0", lambda a, b: a.sum(0), lambda a, b: a.sum(0)),
    ("softmax", lambda a, b: torch.softmax(a, -1), lambda a, b: torch.softmax(a, -1)),
    ("log_softmax", lambda a, b: torch.log_softmax(a, 0), lambda a, b: torch.log_softmax(a, 0)),
    ("silu", lambda a, b: torch.nn.functional.silu(a), lambda a, b: torch.nn.functional.silu(a)),
    (
        "gelu_tanh",
        lambda a, b: torch.nn.functional.gelu(a, approximate="tanh"),
        lambda a, b: torch.nn.functional.gelu(a, approximate="tanh"),
    ),
    ("pow", lambda a, b: a.pow(2), lambda a, b: a.pow(2)),
]
TOL = {torch.float32: 2e-6, torch.bfloat16: 1e-2}  # max |err| / max |ref|


@pytest.mark.parametrize("name,fn,ref_fn", ACCURACY, ids=[a[0] for a in ACCURACY])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_kernel_accuracy_against_float64(
    name: str, fn: Callable[..., torch.Tensor], ref_fn: Callable[..., torch.Tensor], dtype: torch.dtype
) -> None:
    torch.manual_seed(0)
    a = torch.randn(48, 300).to(dtype)
    b = (torch.randn(300, 300) / 17).to(dtype)
    with batch_invariant_mode("cpu"):
        got = fn(a, b)
    assert got.dtype == dtype
    ref = ref_fn(a.double(), b.double())
    err = ((got.double() - ref).abs().max() / ref.abs().max()).item()
    assert err < TOL[dtype], f"{name} {dtype}: relative error {err:.3g}"


def test_attention_prefill_decode_and_left_padding_bitwise() -> None:
    from precdiff.kernels.attention import batch_invariant_attention

    class _Mod(torch.nn.Module):
        is_causal = True

    torch.manual_seed(0)
    h, hk, d, length, pad = 4, 2, 16, 150, 9
    q, k, v = torch.randn(1, h, length, d), torch.randn(1, hk, length, d), torch.randn(1, hk, length, d)
    prefill, _ = batch_invariant_attention(_Mod(), q, k, v, None)  # [1, L, H, D]
    for p in (0, 63, 64, 100, length - 1):
        dec, _ = batch_invariant_attention(
            _Mod(), q[:, :, p : p + 1], k[:, :, : p + 1], v[:, :, : p + 1], None
        )
        assert torch.equal(dec[0, 0], prefill[0, p]), p
    qb, kb, vb = (
        torch.randn(2, h, length + pad, d),
        torch.randn(2, hk, length + pad, d),
        torch.randn(2, hk, length + pad, d),
    )
    qb[1, :, pad:], kb[1, :, pad:], vb[1, :, pad:] = q[0], k[0], v[0]
    keep = torch.ones(2, length + pad, dtype=torch.bool)
    keep[1, :pad] = False
    mask = (
        torch.tril(torch.ones(length + pad, length + pad, dtype=torch.bool))[None, None]
        & keep[:, None, None, :]
    )
    batched, _ = batch_invariant_attention(_Mod(), qb, kb, vb, mask)
    assert torch.equal(batched[1, pad:], prefill[0])
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.repeat_interleave(2, 1).double(), v.repeat_interleave(2, 1).double(), is_causal=True
    )
    assert (prefill.double() - ref.transpose(1, 2)).abs().max().item() < 1e-5
