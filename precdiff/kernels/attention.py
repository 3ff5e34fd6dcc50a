"""Batch-invariant attention, registered with ``transformers`` as ``"precdiff_batch_invariant"``.

Why SDPA is not batch invariant: flash / cuDNN / efficient kernels pick a split-KV count from
batch x heads, prefill and decode take different kernels, and a padding mask moves SDPA to another
backend. This function takes one path for every call:

* **Fixed KV split size.** Keys are processed in blocks of :data:`KV_BLOCK` (a fixed *size*, never a
  fixed *count*), combined with the online softmax in block order. A query row's result depends only
  on its own q vector and on the key blocks, so prefill (many rows) and decode (one row) agree.
* **Blocks start at the sequence's first real key.** With left padding the real keys of a sequence
  begin at ``start = first unmasked position``; the blocks are laid from there, so the probe's keys
  sit at the same offsets inside the same blocks whether it is padded or alone. A block that is
  entirely masked leaves (max, sum, accumulator) bit-for-bit unchanged (``exp(-inf) = 0``, the
  rescale factor is ``exp(0) = 1``), so extra masked blocks (right padding, causal future) are exact
  no-ops.
* **Masks are data.** Causal, padding and sliding-window masks arrive as one boolean or additive
  mask and are added to the scores; no mask ever switches kernels.

On CUDA the same algorithm runs as one Triton kernel (:mod:`precdiff.kernels.triton_ops`); on CPU and
NPU it runs with the row-tiled torch kernels of :mod:`precdiff.kernels.cpu` (slow: a Python loop over
batch x kv-heads x blocks; it is there for correctness).

Not supported (raise :class:`~precdiff.errors.KernelError`): dropout, logit soft-capping, attention
sinks, position-bias (T5-style) masks and paged caches.
"""

from __future__ import annotations

from typing import Any

import torch

from precdiff.errors import KernelError
from precdiff.kernels import cpu

ATTENTION_IMPLEMENTATION = "precdiff_batch_invariant"
KV_BLOCK = 64
"""Keys per block on the torch path (a fixed split *size*)."""

_registered = False


def additive_mask(
    attention_mask: torch.Tensor | None, kv_len: int
) -> torch.Tensor | None:  # [B' , H', Sq, Skv] fp32, 0 or -inf (B', H' may be 1)
    """Boolean (True = attend) or additive mask -> fp32 additive mask with -inf for masked keys.

    An additive mask at or below its dtype's minimum (``transformers``' eager convention) counts as
    masked, so every masked score is exactly -inf and contributes exactly zero.
    """
    if attention_mask is None:
        return None
    mask = attention_mask[..., :kv_len]
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill(
            ~mask, float("-inf")
        )
    masked = mask <= torch.finfo(mask.dtype).min
    return mask.to(torch.float32).masked_fill(masked, float("-inf"))


def kv_starts(mask: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:  # [B] int64
    """Per sequence, the first key position any query may attend to (0 without a mask)."""
    if mask is None:
        return torch.zeros(batch, dtype=torch.int64, device=device)
    allowed = (mask > float("-inf")).any(dim=2).any(dim=1)  # [B', Skv]
    has_any = allowed.any(dim=-1)
    first = allowed.to(torch.int8).argmax(dim=-1)  # argmax returns the first maximal index
    starts = torch.where(has_any, first, torch.zeros_like(first))
    return starts.expand(batch).contiguous() if starts.shape[0] == 1 else starts


def _torch_attention(
    q: torch.Tensor,  # [B, H, Sq, D]
    k: torch.Tensor,  # [B, Hkv, Skv, D]
    v: torch.Tensor,  # [B, Hkv, Skv, Dv]
    mask: torch.Tensor | None,  # [B', H', Sq, Skv] additive fp32
    starts: list[int],
    scale: float,
    causal: bool,
) -> torch.Tensor:  # [B, H, Sq, Dv]
    batch, heads, sq, dim = q.shape
    kv_heads, skv, dv = k.shape[1], k.shape[2], v.shape[3]
    groups = heads // kv_heads
    rows = groups * sq
    out = torch.empty((batch, heads, sq, dv), dtype=q.dtype, device=q.device)
    q_pos = torch.arange(skv - sq, skv, device=q.device).repeat(groups)  # [rows], absolute positions
    ninf = float("-inf")
    for b in range(batch):
        for hk in range(kv_heads):
            qs = q[b, hk * groups : (hk + 1) * groups].reshape(rows, dim)
            if mask is not None:
                mb = mask[b if mask.shape[0] > 1 else 0]
                mh = mb[hk * groups : (hk + 1) * groups] if mb.shape[0] > 1 else mb
                mrows = mh.expand(groups, sq, skv).reshape(rows, skv)
            m = torch.full((rows,), ninf, dtype=torch.float32, device=q.device)
            den = torch.zeros((rows,), dtype=torch.float32, device=q.device)
            acc = torch.zeros((rows, dv), dtype=torch.float32, device=q.device)
            for j0 in range(starts[b], skv, KV_BLOCK):
                n = min(KV_BLOCK, skv - j0)
                kb = torch.zeros((KV_BLOCK, dim), dtype=torch.float32, device=q.device)
                kb[:n].copy_(k[b, hk, j0 : j0 + n])
                vb = torch.zeros((KV_BLOCK, dv), dtype=torch.float32, device=q.device)
                vb[:n].copy_(v[b, hk, j0 : j0 + n])
                bias = torch.full((rows, KV_BLOCK), ninf, dtype=torch.float32, device=q.device)
                if mask is not None:
                    bias[:, :n].copy_(mrows[:, j0 : j0 + n])
                else:
                    bias[:, :n] = 0.0
                if causal:
                    k_pos = torch.arange(j0, j0 + KV_BLOCK, device=q.device)
                    bias = bias.masked_fill(k_pos[None, :] > q_pos[:, None], ninf)
                s = cpu._mm_acc(qs, kb.t()) * scale + bias  # [rows, KV_BLOCK]
                m_new = torch.maximum(m, s.amax(dim=-1))
                m_safe = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
                p = cpu.exp(s - m_safe[:, None])
                alpha = cpu.exp(m - m_safe)  # [rows]: chunked, see cpu._chunked
                den = den * alpha + cpu.sum_dim(p, [-1])
                acc = acc * alpha[:, None] + cpu._mm_acc(p, vb)
                m = m_new
            res = torch.where(den[:, None] > 0, acc / den.clamp_min(1e-38)[:, None], torch.zeros_like(acc))
            out[b, hk * groups : (hk + 1) * groups].copy_(res.reshape(groups, sq, dv).to(q.dtype))
    return out


def batch_invariant_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [B, H, Sq, D]
    key: torch.Tensor,  # [B, Hkv, Skv, D]
    value: torch.Tensor,  # [B, Hkv, Skv, Dv]
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:  # ([B, Sq, H, Dv], None)
    """``transformers`` attention function (the ``sdpa_attention_forward`` signature).

    Causality follows ``transformers``' SDPA wrapper: with no mask, ``is_causal`` (kwarg, else
    ``module.is_causal``) applies when more than one query is given, and keys beyond the queries are
    cropped (an empty static cache at prefill).
    """
    for unsupported in ("softcap", "s_aux", "sinks", "position_bias"):
        if kwargs.get(unsupported) is not None:
            raise KernelError(
                f"the batch-invariant attention does not support {unsupported!r} (model "
                f"{type(module).__name__}); capture this model without --kernels batch-invariant"
            )
    if dropout != 0.0:
        raise KernelError(
            f"the batch-invariant attention is for inference and got dropout={dropout}; call model.eval()"
        )
    if kwargs.get("cache") is not None:
        raise KernelError("the batch-invariant attention does not support paged caches; use a DynamicCache")
    if query.shape[1] % key.shape[1] != 0:
        raise KernelError(
            f"query heads {query.shape[1]} are not a multiple of key/value heads {key.shape[1]}"
        )
    sq = query.shape[2]
    scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
    is_causal = kwargs.get("is_causal")
    is_causal = bool(getattr(module, "is_causal", True) if is_causal is None else is_causal)
    causal = attention_mask is None and is_causal and sq > 1
    if causal and key.shape[2] > sq:
        key, value = key[:, :, :sq], value[:, :, :sq]
    mask = additive_mask(attention_mask, key.shape[2])
    if query.device.type == "cuda":
        from precdiff.kernels import triton_ops

        # No mask: every sequence starts at key 0, and the decode hot path skips building starts.
        starts = kv_starts(mask, query.shape[0], query.device) if mask is not None else None
        return triton_ops.attention(query, key, value, mask, starts, scale, causal), None
    starts_list = kv_starts(mask, query.shape[0], query.device).tolist()
    out = _torch_attention(query, key, value, mask, [int(s) for s in starts_list], scale, causal)
    return out.transpose(1, 2).contiguous(), None


def register_attention() -> None:
    """Register the attention function and its mask builder with ``transformers`` (idempotent).

    The mask builder is ``transformers``' SDPA one (boolean, True = attend; None when a plain causal
    mask can be skipped): without a registered mask builder ``transformers`` passes no mask at all
    to an unknown implementation, and padding would be ignored.
    """
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_IMPLEMENTATION, batch_invariant_attention)
    AttentionMaskInterface.register(ATTENTION_IMPLEMENTATION, sdpa_mask)
    _registered = True
