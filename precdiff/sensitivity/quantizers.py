"""Weight-only fake quantization: quantize to integers and straight back to the weight's dtype.

A weight ``W`` of shape ``[rows, cols]`` (``nn.Linear``: ``[out_features, in_features]``; ``nn.Embedding``:
``[vocab, hidden]``) is cut into blocks that share one scale (and, asymmetric, one zero point):

- ``tensor``: the whole matrix is one block;
- ``channel``: one block per row (per output channel of a Linear, per token row of an embedding);
- ``group:N``: each row is cut into consecutive groups of ``N`` columns (the last may be shorter).

With ``b`` bits, for a block with ``m = max|w|`` (symmetric) or ``lo = min(min w, 0)``,
``hi = max(max w, 0)`` (asymmetric):

- symmetric: ``qmax = 2^(b-1) - 1``, ``scale = m / qmax``, ``q = clamp(round(w / scale), -qmax, qmax)``,
  ``ŵ = q · scale``;
- asymmetric: ``scale = (hi - lo) / (2^b - 1)``, ``z = round(-lo / scale)``,
  ``q = clamp(round(w / scale) + z, 0, 2^b - 1)``, ``ŵ = (q - z) · scale``.

The asymmetric range always contains 0 (as torch's MinMaxObserver does), so zero, and a block of one
repeated value, are represented exactly. A block of zeros gets ``scale = 1`` (every value exact).

Round-trip bound, per block, in exact arithmetic: ``|w - ŵ| ≤ scale / 2`` for both schemes (rounding moves
a value by at most half a step; the clamp only ever moves ``round(w/scale) (+ z)`` back by at most half a
step, because the extreme value of the block maps to within half a step of the clamp limit). The
computation runs in float32, so the bound holds up to float32 rounding of ``w / scale`` and ``q · scale``
(a relative 2⁻²³ of the block's range); casting ``ŵ`` back to a 16-bit weight dtype adds that dtype's
rounding (half an ulp of ``ŵ``). Tested in ``tests/sensitivity/test_quantizers.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch.nn import functional

from precdiff.errors import InputError

GRANULARITIES = ("tensor", "channel", "group")
BITS = (8, 4)
_GROUP = re.compile(r"^group:(\d+)$")


@dataclass(frozen=True)
class QuantScheme:
    """How weights are fake-quantized: bit width, block shape, symmetric or asymmetric."""

    bits: int = 8
    granularity: str = "channel"  # tensor | channel | group
    group_size: int | None = None  # columns per group when granularity == "group"
    symmetric: bool = True

    def validate(self) -> None:
        if self.bits not in BITS:
            raise InputError(f"--bits {self.bits} is not supported; use --bits 8 or 4 (bits=8|4)")
        if self.granularity not in GRANULARITIES:
            raise InputError(
                f"unknown granularity {self.granularity!r}; use --granularity tensor|channel|group:N "
                "(granularity=...)"
            )
        if (self.granularity == "group") != (self.group_size is not None):
            raise InputError("a group size goes with granularity 'group' only: --granularity group:128")
        if self.group_size is not None and self.group_size < 1:
            raise InputError(f"group size must be >= 1, got {self.group_size}; e.g. --granularity group:128")

    @property
    def label(self) -> str:
        """``int4 group:128 sym``-style name for tables and JSON."""
        granularity = f"group:{self.group_size}" if self.granularity == "group" else self.granularity
        return f"int{self.bits} {granularity} {'sym' if self.symmetric else 'asym'}"

    def to_dict(self) -> dict[str, object]:
        return {
            "bits": self.bits,
            "granularity": self.granularity,
            "group_size": self.group_size,
            "symmetric": self.symmetric,
            "label": self.label,
        }


def parse_granularity(text: str) -> tuple[str, int | None]:
    """``"tensor"|"channel"|"group:N"`` to ``(granularity, group_size)``.

    Raises:
        InputError: anything else.
    """
    value = text.strip().lower()
    if value in ("tensor", "channel"):
        return value, None
    match = _GROUP.match(value)
    if match is None or int(match.group(1)) < 1:
        raise InputError(
            f"unknown --granularity {text!r}; use tensor, channel or group:N with N >= 1, e.g. group:128 "
            "(granularity='group:128')"
        )
    return "group", int(match.group(1))


def _blocks(weight: torch.Tensor, scheme: QuantScheme) -> tuple[torch.Tensor, int]:
    """``weight`` as float32 ``[blocks, block_len]`` (zero-padded) and the padding added per row."""
    matrix = weight.detach().float().reshape(weight.shape[0], -1) if weight.ndim > 1 else weight.float()[None]
    if scheme.granularity == "tensor":
        return matrix.reshape(1, -1), 0
    if scheme.granularity == "channel":
        return matrix, 0
    size = scheme.group_size or 1
    pad = (-matrix.shape[1]) % size
    # Zero padding changes no block's scale: both schemes' ranges already contain 0.
    padded = functional.pad(matrix, (0, pad)) if pad else matrix
    return padded.reshape(-1, size), pad


def block_scales(weight: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """The step size of each block, float32 ``[blocks]`` (the round-trip bound is half of it)."""
    blocks, _ = _blocks(weight, scheme)
    return _scale_and_zero(blocks, scheme)[0].squeeze(1)


def _scale_and_zero(blocks: torch.Tensor, scheme: QuantScheme) -> tuple[torch.Tensor, torch.Tensor]:
    if scheme.symmetric:
        qmax = 2 ** (scheme.bits - 1) - 1
        scale = blocks.abs().amax(dim=1, keepdim=True) / qmax
        zero = torch.zeros_like(scale)
    else:
        levels = 2**scheme.bits - 1
        low = blocks.amin(dim=1, keepdim=True).clamp(max=0.0)
        high = blocks.amax(dim=1, keepdim=True).clamp(min=0.0)
        scale = (high - low) / levels
        zero = torch.round(-low / torch.where(scale > 0, scale, 1.0))
    # An all-zero block: any positive scale represents it exactly.
    return torch.where(scale > 0, scale, 1.0), zero


def fake_quantize(weight: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Quantize ``weight`` with ``scheme`` and dequantize it back: same shape, dtype and device.

    Args:
        weight: a 2-D weight (``[out, in]`` or ``[vocab, hidden]``); higher ranks are flattened after the
            first dimension, 1-D weights are one row.
        scheme: bits, granularity and symmetry.

    Returns:
        ŵ, with ``|w - ŵ| <= scale/2`` per block (see the module docstring for the rounding terms).

    Example:
        >>> w = torch.tensor([[0.5, -1.0, 0.25]])
        >>> fake_quantize(w, QuantScheme(bits=8, granularity="tensor")).tolist()
        [[0.5, -1.0, 0.25]]
    """
    if not weight.is_floating_point():
        raise TypeError(f"fake_quantize needs a floating-point weight, got {weight.dtype}")
    blocks, pad = _blocks(weight, scheme)
    scale, zero = _scale_and_zero(blocks, scheme)
    if scheme.symmetric:
        qmax = 2 ** (scheme.bits - 1) - 1
        q = torch.clamp(torch.round(blocks / scale), -qmax, qmax)
    else:
        q = torch.clamp(torch.round(blocks / scale) + zero, 0, 2**scheme.bits - 1)
    restored = (q - zero) * scale
    rows = weight.shape[0] if weight.ndim > 1 else 1
    restored = restored.reshape(rows, -1)
    if pad:
        restored = restored[:, :-pad]
    return restored.reshape(weight.shape).to(weight.dtype)


def bits_label(scheme: QuantScheme) -> str:
    """The flag a quantized layer gets in ``sensitive_layers.json`` (``int8`` / ``int4``)."""
    return f"int{scheme.bits}"
