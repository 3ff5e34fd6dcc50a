"""Result objects of ``find_sensitive_layers``: frozen values with ``to_dict()``.

``bool(report)`` is True when no layer is flagged. Renderers read these and never recompute a number.
The JSON layout is specified in ``docs/sensitivity.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SCHEMA = "precdiff.sensitivity"
SCHEMA_VERSION = 1
FLAG_FLOAT = "bf16"  # the flag of a layer that must stay in 16-bit float (the practice's name for it)


def _number(value: float) -> float | str | None:
    """JSON has no NaN/inf: NaN becomes null, ±inf the strings "inf" / "-inf"."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass(frozen=True)
class LayerSensitivity:
    """The measures of one quantized module (a Linear, an embedding or the LM head)."""

    name: str  # fully qualified module name, e.g. ``model.layers.3.self_attn.q_proj``
    layer: int | None  # decoder-layer index; None outside the decoder layers
    op: str  # name inside the decoder layer (``self_attn.q_proj``), else the full name
    kind: str  # linear | embedding
    shape: tuple[int, ...]  # weight shape
    kl: float  # mean over output channels of KL(float ‖ quantized) of the output histograms, nats
    kl_max: float  # the largest per-channel KL
    weight_r: float  # (max − min) / (Q3 − Q1) of the weight
    act_r: float  # the same for the layer's float output values, pooled
    energy: float  # σ₁ / Σσᵢ of the weight
    skewness: float  # Pearson's m₃ / m₂^{3/2} of the layer's float output values, pooled
    rel_l2: float  # ‖ŷ − y‖ / ‖y‖ of the output over all calibration tokens
    cosine: float
    combined_rank: float  # mean of the KL, R and energy ranks (1 = most sensitive); see docs
    flagged: bool
    reasons: tuple[str, ...]  # e.g. ("kl", "R") or ("budget",)

    def entry(self, quantized_flag: str) -> dict[str, Any]:
        """The ``sensitive_layers.json`` record: ``{"layer", "op", "flag", "kl", "R", "energy", ...}``."""
        return {
            "layer": self.layer,
            "op": self.op,
            "name": self.name,
            "flag": FLAG_FLOAT if self.flagged else quantized_flag,
            "kl": _number(self.kl),
            "R": _number(self.weight_r),
            "energy": _number(self.energy),
            "R_act": _number(self.act_r),
            "skewness": _number(self.skewness),
            "reasons": list(self.reasons),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "op": self.op,
            "kind": self.kind,
            "shape": list(self.shape),
            "kl": _number(self.kl),
            "kl_max": _number(self.kl_max),
            "R": _number(self.weight_r),
            "R_act": _number(self.act_r),
            "energy": _number(self.energy),
            "skewness": _number(self.skewness),
            "rel_l2": _number(self.rel_l2),
            "cosine": _number(self.cosine),
            "combined_rank": _number(self.combined_rank),
            "flagged": self.flagged,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class VerifyRow:
    """One model variant on the held-out prompts, against the float model."""

    variant: str  # float | quantized | mixed
    quantized_layers: int
    perplexity: float
    mean_kl: float  # mean over prompts of KL(float ‖ variant) of the next-token distribution after it
    top1_agreement: float  # fraction of prompt positions whose argmax token equals the float model's
    greedy_agreement: float  # mean over prompts of (common prefix with float's continuation) / new tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "quantized_layers": self.quantized_layers,
            "perplexity": _number(self.perplexity),
            "mean_kl": _number(self.mean_kl),
            "top1_agreement": _number(self.top1_agreement),
            "greedy_agreement": _number(self.greedy_agreement),
        }


@dataclass(frozen=True)
class Verification:
    """Float vs all-quantized vs mixed (flagged layers float) on held-out prompts."""

    prompts: int
    tokens: int  # prompt tokens scored (perplexity and top-1)
    new_tokens: int  # greedy continuation length per prompt
    rows: tuple[VerifyRow, ...]  # float, quantized, mixed

    def row(self, variant: str) -> VerifyRow:
        return next(r for r in self.rows if r.variant == variant)

    @property
    def mixed_closer(self) -> bool:
        """Whether keeping the flagged layers float brings the model closer to float (lower mean KL)."""
        return self.row("mixed").mean_kl < self.row("quantized").mean_kl

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "tokens": self.tokens,
            "new_tokens": self.new_tokens,
            "mixed_closer": self.mixed_closer,
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class RunInfo:
    """What ran: model, device, dtype, calibration size, software versions, wall time."""

    model: str
    device: str
    dtype: str
    calib: str
    prompts: int
    tokens: int
    max_tokens: int
    versions: dict[str, str | None]
    runtime_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "calib": self.calib,
            "prompts": self.prompts,
            "tokens": self.tokens,
            "max_tokens": self.max_tokens,
            "versions": dict(self.versions),
            "runtime_s": self.runtime_s,
        }


@dataclass(frozen=True)
class SensitivityReport:
    """Every layer's measures, which are flagged and why, and (with verify) the verification table."""

    run: RunInfo
    scheme: dict[str, Any]  # QuantScheme.to_dict()
    quantized_flag: str  # int8 | int4: the flag of layers that may be quantized
    thresholds: dict[str, float]
    budget: float | None
    bins: int
    smoothing: float
    layers: tuple[LayerSensitivity, ...]  # forward order of registration (named_modules order)
    verification: Verification | None

    @property
    def flagged(self) -> tuple[LayerSensitivity, ...]:
        return tuple(layer for layer in self.layers if layer.flagged)

    def __bool__(self) -> bool:
        return not self.flagged

    def sensitive_layers(self) -> list[dict[str, Any]]:
        """The ``sensitive_layers.json`` document: one record per layer, ``flag`` bf16 or int8/int4."""
        return [layer.entry(self.quantized_flag) for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "run": self.run.to_dict(),
            "scheme": dict(self.scheme),
            "mode": "budget" if self.budget is not None else "thresholds",
            "thresholds": dict(self.thresholds),
            "budget": self.budget,
            "bins": self.bins,
            "smoothing": self.smoothing,
            "summary": {"layers": len(self.layers), "flagged": len(self.flagged)},
            "flagged": [layer.name for layer in self.flagged],
            "layers": [layer.to_dict() for layer in self.layers],
            "verification": self.verification.to_dict() if self.verification is not None else None,
        }
