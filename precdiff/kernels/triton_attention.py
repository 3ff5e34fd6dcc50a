"""The batch-invariant attention kernel in Triton (CUDA). Imported lazily, with triton_ops.

One program computes ``ATTN_BLOCK_M`` query rows of one (batch, head) and walks the keys in blocks
of ``ATTN_BLOCK_N`` from the sequence's first real key (``starts[b]``), with the online softmax.
Everything that fixes a row's arithmetic (BLOCK_M, so the MMA shape; BLOCK_N and the block origin,
so the grouping of keys) is the same for prefill, decode, any batch size and any padding: see
:mod:`precdiff.kernels.attention` for the argument that masked blocks are exact no-ops.
"""

# Triton kernels take tl-typed arguments that mypy cannot check; the Python wrappers are typed.
# mypy: disable-error-code="untyped-decorator,no-untyped-def,misc"
from __future__ import annotations

import torch
import triton
import triton.language as tl

from precdiff.kernels.triton_launch import launch

ATTN_BLOCK_M = 64
ATTN_BLOCK_N = 64


@triton.jit
def _attn_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    mask_ptr,
    starts_ptr,
    o_ptr,
    scale,
    s_qb,
    s_qh,
    s_qm,
    s_qd,
    s_kb,
    s_kh,
    s_kn,
    s_kd,
    s_vb,
    s_vh,
    s_vn,
    s_vd,
    s_mb,
    s_mh,
    s_mm,
    s_mn,
    s_ob,
    s_oh,
    s_om,
    s_od,
    H,
    GROUPS,
    SQ,
    SKV,
    D,
    HAS_MASK: tl.constexpr,
    HAS_STARTS: tl.constexpr,
    CAUSAL: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    hk = h // GROUPS
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_D)
    row_ok = offs_m < SQ
    d_ok = offs_d < D
    q = tl.load(
        q_ptr + b * s_qb + h * s_qh + offs_m[:, None] * s_qm + offs_d[None, :] * s_qd,
        mask=row_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    start = 0
    if HAS_STARTS:
        start = tl.load(starts_ptr + b).to(tl.int32)
    q_pos = SKV - SQ + offs_m  # absolute key position of each query (bottom-right aligned)
    end = SKV
    if CAUSAL:
        # Blocks past the tile's last query are fully masked for every row: skipping them is exact.
        end = tl.minimum(SKV, SKV - SQ + (pid_m + 1) * BLOCK_M)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_D), dtype=tl.float32)
    for j0 in range(start, end, BLOCK_N):
        offs_n = j0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < SKV
        kt = tl.load(
            k_ptr + b * s_kb + hk * s_kh + offs_n[None, :] * s_kn + offs_d[:, None] * s_kd,
            mask=n_ok[None, :] & d_ok[:, None],
            other=0.0,
        )  # [HEAD_D, BLOCK_N]
        if IEEE:
            s = tl.dot(q, kt, input_precision="ieee")
        else:
            s = tl.dot(q, kt)
        s = s * scale
        if HAS_MASK:
            bias = tl.load(
                mask_ptr + b * s_mb + h * s_mh + offs_m[:, None] * s_mm + offs_n[None, :] * s_mn,
                mask=row_ok[:, None] & n_ok[None, :],
                other=float("-inf"),
            )
            s = s + bias
        s = tl.where(n_ok[None, :], s, float("-inf"))
        if CAUSAL:
            s = tl.where(offs_n[None, :] <= q_pos[:, None], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(s - m_safe[:, None])
        alpha = tl.exp(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_ptr + b * s_vb + hk * s_vh + offs_n[:, None] * s_vn + offs_d[None, :] * s_vd,
            mask=n_ok[:, None] & d_ok[None, :],
            other=0.0,
        )  # [BLOCK_N, HEAD_D]
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = tl.where(l_i[:, None] > 0, acc / tl.where(l_i > 0, l_i, 1.0)[:, None], 0.0)
    tl.store(
        o_ptr + b * s_ob + h * s_oh + offs_m[:, None] * s_om + offs_d[None, :] * s_od,
        out.to(o_ptr.dtype.element_ty),
        mask=row_ok[:, None] & d_ok[None, :],
    )


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    starts: torch.Tensor | None,
    scale: float,
    causal: bool,
) -> torch.Tensor:
    """q [B, H, Sq, D], k/v [B, Hkv, Skv, D], mask additive fp32 [B'|1, H'|1, Sq, Skv] or None,
    starts [B] (None: every sequence starts at key 0) -> [B, Sq, H, D] (the layout transformers wants back:
    written there directly, which saves the transpose copy SDPA callers make)."""
    batch, heads, sq, dim = q.shape
    skv = k.shape[2]
    if v.shape[3] != dim:
        raise NotImplementedError("batch-invariant Triton attention needs equal q/k and v head dims")
    out = torch.empty((batch, sq, heads, dim), dtype=q.dtype, device=q.device)
    out_bhsd = out.transpose(1, 2)
    if mask is not None:
        mask = mask.expand(batch, heads, sq, skv)
        ms = (mask.stride(0), mask.stride(1), mask.stride(2), mask.stride(3))
    else:
        ms = (0, 0, 0, 0)
    grid = (triton.cdiv(sq, ATTN_BLOCK_M), batch * heads)
    launch(
        _attn_kernel,
        grid,
        q,
        k,
        v,
        mask if mask is not None else q,
        starts if starts is not None else q,
        out_bhsd,
        float(scale),
        *q.stride(),
        *k.stride(),
        *v.stride(),
        *ms,
        *out_bhsd.stride(),
        heads,
        heads // k.shape[1],
        sq,
        skv,
        dim,
        mask is not None,
        starts is not None,
        causal,
        q.dtype == torch.float32,
        ATTN_BLOCK_M,
        ATTN_BLOCK_N,
        max(16, triton.next_power_of_2(dim)),
        tensors=6,
        num_warps=4,
        num_stages=2,
    )
    return out
