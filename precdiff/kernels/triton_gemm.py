"""Batch-invariant GEMMs in Triton (CUDA): mm, addmm, bmm, baddbmm and MoE ``_grouped_mm``.

Invariance rule: **no split-K, K walked from 0 in order.** One program owns an output tile and
accumulates ``acc = dot(a, b, acc)`` in fp32 registers over K in ``BLOCK_K`` steps, so a row's result
depends on K and the MMA instruction, never on M or on the other rows. Tiles, BLOCK_K and the load
path (pointer / TMA / persistent TMA) are chosen per (M, K, N) for speed by
:mod:`precdiff.kernels.gemm_tiles`, which only holds configurations proven bit-identical on the device.
fp32 operands use ``input_precision="ieee"`` (FMA, never TF32).

The wrappers are on the decode hot path (a Python call per Linear per token), so they do the least
host work that is correct: no copies of the operands, the bias read in its own dtype inside the
kernel, the tile lookup cached.
"""

# Triton kernels take tl-typed arguments that mypy cannot check; the Python wrappers are typed.
# mypy: disable-error-code="untyped-decorator,no-untyped-def,misc"
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import triton
import triton.language as tl

from precdiff.kernels import gemm_tiles
from precdiff.kernels.gemm_tiles import POINTER, TMA_PERSISTENT
from precdiff.kernels.triton_launch import Plan, launch, launch_plan, remember

try:  # host-side TMA descriptors (triton >= 3.4); without them every GEMM takes the pointer kernel
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older triton
    TensorDescriptor = None

FLOATS = (torch.bfloat16, torch.float16, torch.float32)
GROUP_M = 8


@triton.jit
def _tile_coords(tile, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Grouped tile order for L2 reuse: which program runs a tile, never the arithmetic."""
    num_m = tl.cdiv(M, BLOCK_M)
    in_group = GROUP_M * tl.cdiv(N, BLOCK_N)
    first_m = (tile // in_group) * GROUP_M
    size_m = min(num_m - first_m, GROUP_M)
    return first_m + (tile % in_group) % size_m, (tile % in_group) // size_m


@triton.jit
def _epilogue(
    acc,
    c_ptr,
    bias_ptr,
    M,
    N,
    off_m,
    off_n,
    s_cm,
    s_cn,
    s_xm,
    s_xn,
    alpha,
    beta,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    offs_m = off_m + tl.arange(0, BLOCK_M)
    offs_n = off_n + tl.arange(0, BLOCK_N)
    out_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    acc = acc * alpha
    if HAS_BIAS:
        x_ptrs = bias_ptr + offs_m[:, None].to(tl.int64) * s_xm + offs_n[None, :] * s_xn
        acc += beta * tl.load(x_ptrs, mask=out_mask, other=0.0).to(tl.float32)
    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * s_cm + offs_n[None, :] * s_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=out_mask)


@triton.jit(do_not_specialize=["M"])
def _mm_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    bias_ptr,
    M,
    N,
    K,
    s_ab,
    s_am,
    s_ak,
    s_bb,
    s_bk,
    s_bn,
    s_cb,
    s_cm,
    s_cn,
    s_xb,
    s_xm,
    s_xn,
    alpha,
    beta,
    HAS_BIAS: tl.constexpr,
    IEEE: tl.constexpr,
    EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    pid_m, pid_n = _tile_coords(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    batch = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + batch * s_ab + offs_m[:, None].to(tl.int64) * s_am + offs_k[None, :] * s_ak
    b_ptrs = b_ptr + batch * s_bb + offs_k[:, None] * s_bk + offs_n[None, :].to(tl.int64) * s_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:  # same arithmetic; the K mask only pads with zeros
            a = tl.load(a_ptrs, mask=offs_m[:, None] < M, other=0.0)
            b = tl.load(b_ptrs, mask=offs_n[None, :] < N, other=0.0)
        else:
            k_left = K - k0
            a = tl.load(a_ptrs, mask=(offs_m[:, None] < M) & (offs_k[None, :] < k_left), other=0.0)
            b = tl.load(b_ptrs, mask=(offs_k[:, None] < k_left) & (offs_n[None, :] < N), other=0.0)
        if IEEE:
            acc = tl.dot(a, b, acc, input_precision="ieee")
        else:
            acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K * s_ak
        b_ptrs += BLOCK_K * s_bk
    _epilogue(
        acc,
        c_ptr + batch * s_cb,
        bias_ptr + batch * s_xb,
        M,
        N,
        pid_m * BLOCK_M,
        pid_n * BLOCK_N,
        s_cm,
        s_cn,
        s_xm,
        s_xn,
        alpha,
        beta,
        HAS_BIAS,
        BLOCK_M,
        BLOCK_N,
    )


@triton.jit
def _tma_tile(
    a_desc,
    b_desc,
    off_m,
    off_n,
    K,
    B_T: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """One output tile through TMA loads (out-of-bounds boxes are zero-filled, like masked loads)."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a = a_desc.load([off_m, k0])
        if B_T:
            b = b_desc.load([off_n, k0]).T
        else:
            b = b_desc.load([k0, off_n])
        acc = tl.dot(a, b, acc)
    return acc


@triton.jit(do_not_specialize=["M"])
def _mm_tma_kernel(
    a_desc,
    b_desc,
    c_ptr,
    bias_ptr,
    M,
    N,
    K,
    s_cm,
    s_cn,
    s_xm,
    s_xn,
    alpha,
    beta,
    HAS_BIAS: tl.constexpr,
    B_T: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    pid_m, pid_n = _tile_coords(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    acc = _tma_tile(a_desc, b_desc, pid_m * BLOCK_M, pid_n * BLOCK_N, K, B_T, BLOCK_M, BLOCK_N, BLOCK_K)
    _epilogue(
        acc,
        c_ptr,
        bias_ptr,
        M,
        N,
        pid_m * BLOCK_M,
        pid_n * BLOCK_N,
        s_cm,
        s_cn,
        s_xm,
        s_xn,
        alpha,
        beta,
        HAS_BIAS,
        BLOCK_M,
        BLOCK_N,
    )


@triton.jit(do_not_specialize=["M"])
def _mm_tma_persistent_kernel(
    a_desc,
    b_desc,
    c_ptr,
    bias_ptr,
    M,
    N,
    K,
    s_cm,
    s_cn,
    s_xm,
    s_xn,
    alpha,
    beta,
    HAS_BIAS: tl.constexpr,
    B_T: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_SMS: tl.constexpr,
):
    """One program per SM walks the tiles; each tile is computed exactly as in ``_mm_tma_kernel``."""
    num_tiles = tl.cdiv(M, BLOCK_M) * tl.cdiv(N, BLOCK_N)
    for tile in tl.range(tl.program_id(0), num_tiles, NUM_SMS, flatten=True):
        pid_m, pid_n = _tile_coords(tile, M, N, BLOCK_M, BLOCK_N, GROUP_M)
        acc = _tma_tile(a_desc, b_desc, pid_m * BLOCK_M, pid_n * BLOCK_N, K, B_T, BLOCK_M, BLOCK_N, BLOCK_K)
        _epilogue(
            acc,
            c_ptr,
            bias_ptr,
            M,
            N,
            pid_m * BLOCK_M,
            pid_n * BLOCK_N,
            s_cm,
            s_cn,
            s_xm,
            s_xn,
            alpha,
            beta,
            HAS_BIAS,
            BLOCK_M,
            BLOCK_N,
        )


@functools.lru_cache(maxsize=64)
def _device_info(index: int) -> tuple[tuple[int, int], int, str]:
    """(compute capability, SM count, name) of a CUDA device."""
    props = torch.cuda.get_device_properties(index)
    return (props.major, props.minor), props.multi_processor_count, props.name


def _tma_source(t: torch.Tensor) -> tuple[torch.Tensor, bool] | None:
    """(2-D tensor TMA can describe, transposed?) for an operand, or None: unit inner stride and
    16-byte aligned base and row stride are required."""
    if t.stride(1) == 1:
        src, transposed = t, False
    elif t.stride(0) == 1:  # a Linear weight W [N, K] seen as W.t()
        src, transposed = t.t(), True
    else:
        return None
    ok = (src.stride(0) * src.element_size()) % 16 == 0 and src.data_ptr() % 16 == 0
    return (src, transposed) if ok else None


def _matmul_tma(
    a: torch.Tensor,
    b: torch.Tensor,
    out: torch.Tensor,
    x: torch.Tensor | None,
    alpha: float,
    beta: float,
    config: Sequence[int],
    sms: int,
) -> bool:
    """Launch a TMA kernel for 2-D half operands; False when the operands do not allow it."""
    a_src, b_src = _tma_source(a), _tma_source(b)
    if a_src is None or b_src is None or a_src[1]:
        return False
    bm, bn, bk, warps, stages, load = config
    m, k = a.shape
    n = b.shape[1]
    bt, b_t = b_src
    a_desc = TensorDescriptor.from_tensor(a, [bm, bk])
    b_desc = TensorDescriptor.from_tensor(bt, [bn, bk] if b_t else [bk, bn])
    xs = x if x is not None else out
    common = (
        a_desc,
        b_desc,
        out,
        xs,
        m,
        n,
        k,
        out.stride(0),
        out.stride(1),
        xs.stride(0),
        xs.stride(1),
        alpha,
        beta,
        x is not None,
        b_t,
        bm,
        bn,
        bk,
        GROUP_M,
    )
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    if load == TMA_PERSISTENT:
        _mm_tma_persistent_kernel[(min(sms, tiles),)](*common, sms, num_warps=warps, num_stages=stages)
    else:
        _mm_tma_kernel[(tiles,)](*common, num_warps=warps, num_stages=stages)
    return True


_plans: dict[tuple[Any, ...], Plan] = {}


def _plan_key(a: torch.Tensor, b: torch.Tensor) -> tuple[Any, ...]:
    """Everything a 2-D ``a @ b`` launch depends on except the data pointers' alignment."""
    return a.shape, b.shape, a.stride(), b.stride(), a.dtype, b.dtype, a.get_device()


def _mm_fast(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """``a @ b`` for 2-D operands through a cached plan, or None when this shape has none yet.

    The decode hot path: a Linear at M = batch size runs the same shape every token, so everything
    but the output allocation and the launch is looked up once per shape.
    """
    plan = _plans.get(_plan_key(a, b))
    if plan is None:
        return None
    out = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    launch_plan(plan, a, b, out, out)
    return out


def matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    config: Sequence[int] | None = None,
) -> torch.Tensor:
    """a [(B,) M, K] @ b [(B,) K, N] (+ beta * bias broadcast to the output) -> [(B,) M, N], a.dtype.

    ``config`` forces a tile configuration (the benchmark's bit-identity check uses it).
    """
    plain_mm = bias is None and alpha == 1 and beta == 1 and config is None and a.dim() == 2 and b.dim() == 2
    if plain_mm and (fast := _mm_fast(a, b)) is not None:
        return fast
    alpha, beta = float(alpha), float(beta)  # fp32 kernel scalars whatever the caller passed
    batched = a.dim() == 3
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    out = torch.empty((a.shape[0], m, n) if batched else (m, n), dtype=a.dtype, device=a.device)
    if out.numel() == 0:
        return out
    capability, sms, device_name = _device_info(a.get_device())
    is_fp32 = a.dtype == torch.float32
    cfg = (
        gemm_tiles.runs_as(tuple(config), m)  # type: ignore[arg-type]
        if config
        else gemm_tiles.select(m, k, n, gemm_tiles.kind_of(is_fp32), capability, device_name)
    )
    x = bias.expand(out.shape) if bias is not None else None  # a view: the kernel reads it in its dtype
    tma_ok = cfg[5] != POINTER and not batched and not is_fp32 and k > 0
    if (
        tma_ok
        and capability >= (9, 0)
        and TensorDescriptor is not None
        and _matmul_tma(a, b, out, x, alpha, beta, cfg, sms)
    ):
        return out
    bm, bn, bk, warps, stages, _ = cfg
    if batched:
        s_a, s_c = a.stride(), out.stride()
        s_b = b.stride() if b.dim() == 3 else (0, *b.stride())
        s_x = x.stride() if x is not None else s_c
    else:  # 2-D: batch strides 0, no unsqueezed views (this is the decode hot path)
        s_a, s_b, s_c = (0, *a.stride()), (0, *b.stride()), (0, n, 1)
        s_x = (0, *x.stride()) if x is not None else s_c
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn), a.shape[0] if batched else 1)
    tail = (
        m,
        n,
        k,
        *s_a,
        *s_b,
        *s_c,
        *s_x,
        alpha,
        beta,
        x is not None,
        is_fp32,
        k % bk == 0,
        bm,
        bn,
        bk,
        GROUP_M,
    )
    options = {"num_warps": warps, "num_stages": stages}
    if plain_mm:
        launch_plan(
            remember(_plans, _plan_key(a, b), Plan(_mm_kernel, grid, a.get_device(), tail, options)),
            a,
            b,
            out,
            out,
        )
    else:
        launch(_mm_kernel, grid, a, b, out, x if x is not None else out, *tail, tensors=4, **options)
    return out


def _gemm_ok(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.dtype in FLOATS


def _bias_ok(bias: torch.Tensor, a: torch.Tensor) -> bool:
    return bias.dtype in FLOATS and bias.device == a.device


def mm(self: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    if not _gemm_ok(self, mat2):
        return torch.mm(self, mat2, out=self.new_empty((self.shape[0], mat2.shape[1])))
    return matmul(self, mat2)


def addmm(
    self: torch.Tensor, mat1: torch.Tensor, mat2: torch.Tensor, *, beta: float = 1, alpha: float = 1
) -> torch.Tensor:
    if not (_gemm_ok(mat1, mat2) and _bias_ok(self, mat1)):
        out = mat1.new_empty((mat1.shape[0], mat2.shape[1]))
        return torch.addmm(self, mat1, mat2, beta=beta, alpha=alpha, out=out)
    return matmul(mat1, mat2, bias=self if beta != 0 else None, alpha=float(alpha), beta=float(beta))


def bmm(self: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    if not _gemm_ok(self, mat2):
        return torch.bmm(self, mat2, out=self.new_empty((self.shape[0], self.shape[1], mat2.shape[2])))
    return matmul(self, mat2)


def baddbmm(
    self: torch.Tensor, batch1: torch.Tensor, batch2: torch.Tensor, *, beta: float = 1, alpha: float = 1
) -> torch.Tensor:
    if not (_gemm_ok(batch1, batch2) and _bias_ok(self, batch1)):
        out = batch1.new_empty((batch1.shape[0], batch1.shape[1], batch2.shape[2]))
        return torch.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha, out=out)
    return matmul(batch1, batch2, bias=self if beta != 0 else None, alpha=float(alpha), beta=float(beta))


def grouped_mm(
    self: torch.Tensor,
    mat2: torch.Tensor,
    offs: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """MoE ``_grouped_mm``: [S, K] x [E, K, N] with cumulative ``offs``; one M-independent GEMM per
    expert (the offsets are read to the host: a sync per call, the price of invariance here)."""
    dtype = out_dtype or self.dtype
    if self.dim() == 3 and mat2.dim() == 3:
        res = matmul(self, mat2.to(self.dtype)).to(dtype)
        return res if bias is None else res + bias.unsqueeze(1).to(dtype)
    if not (self.dim() == 2 and mat2.dim() == 3 and offs is not None):
        raise NotImplementedError(
            "precdiff batch-invariant _grouped_mm supports [S,K]x[E,K,N] with offs only"
        )
    out = torch.zeros((self.shape[0], mat2.shape[2]), dtype=dtype, device=self.device)
    start = 0
    for expert, end in enumerate(int(e) for e in offs.tolist()):
        if end > start:
            eb = bias[expert] if bias is not None else None
            out[start:end].copy_(matmul(self[start:end], mat2[expert].to(self.dtype), bias=eb).to(dtype))
        start = end
    return out


def parameters() -> dict[str, Any]:
    """The GEMM constants and tile tables (recorded in the capture manifest)."""
    capability, _, name = _device_info(torch.cuda.current_device())
    return {
        "gemm_tiles": gemm_tiles.describe(capability, name),
        "gemm_group_m": GROUP_M,
        "tma": TensorDescriptor is not None,
    }


OPS: dict[str, Callable[..., Any]] = {
    "mm": mm,
    "addmm": addmm,
    "bmm": bmm,
    "baddbmm": baddbmm,
    "_grouped_mm": grouped_mm,
}
"""aten overload -> kernel, for the CUDA dispatch key."""
