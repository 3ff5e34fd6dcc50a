"""Frozen result objects of a comparison; ``to_dict()`` is the JSON report (``docs/compare-json.md``).

Every number a report shows is computed once, in ``compare``/``localize``, and stored here;
renderers (``precdiff.report``) only read these objects. Floats that are not finite are written to
JSON as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` so the file stays strict JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from precdiff._json import json_float
from precdiff.compare.op_results import OpDrillDown
from precdiff.compare.output_results import MAX_LISTED
from precdiff.compare.output_results import GenerationComparison as GenerationComparison  # re-exported
from precdiff.compare.output_results import LogprobComparison as LogprobComparison  # re-exported
from precdiff.compare.reference_results import ReferenceComparison

STATUS_MATCH = "match"
STATUS_WITHIN_NOISE = "within_noise"
STATUS_DIVERGED = "diverged"

# TensorComparison.status values.
COMPARED = "compared"  # values streamed and compared
STATS_ONLY = "stats_only"  # a side was captured with --summary: only its statistics are compared
ESTIMATED = "estimated"  # both sides hold summary sketches: rel-L2 and cosine estimated from them
SHAPE_MISMATCH = "shape_mismatch"  # not comparable element by element

SEVERITY_REFUSE = "refuse"
SEVERITY_WARN = "warn"
SEVERITY_INFO = "info"


@dataclass(frozen=True)
class Difference:
    """One manifest field that differs between the captures."""

    field: str  # dotted manifest path, e.g. "versions.torch"
    a: Any
    b: Any
    severity: str  # "refuse" | "warn" | "info"

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "a": self.a, "b": self.b, "severity": self.severity}


@dataclass(frozen=True)
class TensorComparison:
    """Metrics of one tensor present in both captures."""

    name: str
    module: str
    role: str
    layer: int | None  # decoder-layer index, None outside the decoder layers
    dtype_a: str
    dtype_b: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    status: str  # COMPARED | ESTIMATED | STATS_ONLY | SHAPE_MISMATCH
    numel: int = 0
    rel_l2: float | None = None  # ESTIMATED: from the sketches; STATS_ONLY: the lower bound |‖b‖−‖a‖|/‖a‖
    cosine: float | None = None
    max_abs: float | None = None
    mean_abs: float | None = None
    frac_beyond: float | None = None
    n_unequal: int = 0
    nan_a: int = 0
    nan_b: int = 0
    inf_a: int = 0
    inf_b: int = 0
    nonfinite_mismatch: int = 0
    rtol: float = 0.0
    atol: float = 0.0
    noise_floor: float = 0.0
    exact: bool = False  # every element equal (COMPARED, or ESTIMATED with equal checksums) / every
    # statistic equal (STATS_ONLY)
    is_float: bool = True
    token_aligned: bool = True  # some axis is the token axis; see precdiff.compare.localize
    layer_output: bool = False  # the tensor named exactly <layers_path>.<i> (or <...>.<i>[0])
    # After a discrete flip (MoE routing) earlier in the layer: rel-L2 over the tokens whose choices
    # agree, and how many tokens flipped (see precdiff.compare.flips).
    rel_l2_unflipped: float | None = None
    tokens_flipped: int = 0
    # Token-aligned tensors (see precdiff.compare.per_token): rel-L2 and reference norm per token position,
    # the positions with massive activations and max(rel_l2, rel-L2 without them).
    token_rel_l2: tuple[float, ...] = field(default=(), repr=False)
    token_norms: tuple[float, ...] = field(default=(), repr=False)
    massive_tokens: tuple[int, ...] = ()
    rel_l2_robust: float | None = None
    # ESTIMATED: relative standard deviation of the rel-L2 estimate (0.0 when the checksums are equal).
    estimate_rel_std: float | None = None
    # The earlier tensor this one is in both captures (an alias, docs/format.md): its metrics are that
    # tensor's, and it is not a finding of its own.
    alias_of: str | None = None

    @property
    def flowing_rel_l2(self) -> float | None:
        """The error that flows on to later modules, measured so that massive tokens cannot hide it."""
        return self.rel_l2_robust if self.rel_l2_robust is not None else self.rel_l2

    @property
    def effective_rel_l2(self) -> float | None:
        """The error localization uses: ``rel_l2_unflipped`` when a flip was discounted, else
        :attr:`flowing_rel_l2`."""
        return self.rel_l2_unflipped if self.rel_l2_unflipped is not None else self.flowing_rel_l2

    @property
    def above_floor(self) -> bool:
        """Whether this tensor's error (after discounting flips) is beyond rounding noise (NaN counts)."""
        if self.nonfinite_mismatch:
            return True
        error = self.effective_rel_l2
        return error is not None and not error <= self.noise_floor

    @property
    def raw_above_floor(self) -> bool:
        """Like :attr:`above_floor` but on :attr:`flowing_rel_l2`, flips included."""
        if self.nonfinite_mismatch:
            return True
        error = self.flowing_rel_l2
        return error is not None and not error <= self.noise_floor

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "role": self.role,
            "layer": self.layer,
            "status": self.status,
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "shape_a": list(self.shape_a),
            "shape_b": list(self.shape_b),
            "numel": self.numel,
            "rel_l2": json_float(self.rel_l2),
            "cosine": json_float(self.cosine),
            "max_abs": json_float(self.max_abs),
            "mean_abs": json_float(self.mean_abs),
            "frac_beyond": json_float(self.frac_beyond),
            "n_unequal": self.n_unequal,
            "nan_a": self.nan_a,
            "nan_b": self.nan_b,
            "inf_a": self.inf_a,
            "inf_b": self.inf_b,
            "nonfinite_mismatch": self.nonfinite_mismatch,
            "tolerance": {"rtol": self.rtol, "atol": self.atol},
            "noise_floor": self.noise_floor,
            "exact": self.exact,
            "above_floor": self.above_floor,
            "token_aligned": self.token_aligned,
            "layer_output": self.layer_output,
            "rel_l2_unflipped": json_float(self.rel_l2_unflipped),
            "tokens_flipped": self.tokens_flipped,
            "rel_l2_robust": json_float(self.rel_l2_robust),
            "massive_tokens": list(self.massive_tokens),
            "estimate_rel_std": json_float(self.estimate_rel_std),
            "alias_of": self.alias_of,
        }


@dataclass(frozen=True)
class LayerSummary:
    """The error of one stage of the forward pass: before the layers, one decoder layer, after them."""

    index: int  # -1 = before the first layer (embeddings), 0..N-1 = layers, N = after the last
    label: str  # "embeddings" | "layer 3" | "head"
    output: str | None  # the tensor whose error leaves this stage
    rel_l2: float | None  # error of ``output``
    cosine: float | None
    max_rel_l2: float | None  # largest error of any tensor of the stage
    worst: str | None  # the tensor with ``max_rel_l2``
    received: float | None  # error of the previous stage's output
    growth: float | None  # max_rel_l2 / max(received, noise_floor)
    noise_floor: float
    above_floor: bool
    discrete_flip: str | None = None  # integer tensor flipped by rounding before the error (MoE routing)
    typical_growth: float = 1.0  # median plain growth of the other stages (precdiff.compare.noise)
    token_rel_l2: tuple[float, ...] = field(default=(), repr=False)  # of ``output``, per token position

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "output": self.output,
            "rel_l2": json_float(self.rel_l2),
            "cosine": json_float(self.cosine),
            "max_rel_l2": json_float(self.max_rel_l2),
            "worst": self.worst,
            "received": json_float(self.received),
            "growth": json_float(self.growth),
            "noise_floor": self.noise_floor,
            "above_floor": self.above_floor,
            "discrete_flip": self.discrete_flip,
            "typical_growth": self.typical_growth,
        }


@dataclass(frozen=True)
class Verdict:
    """The one-line answer: did B diverge from A, and where does the error jump."""

    status: str  # "match" | "within_noise" | "diverged"
    message: str  # one line, e.g. "divergence jumps at layer 12 in model.layers.12.mlp.down_proj: ..."
    reason: (
        str  # "identical" | "noise" | "discrete_flip" | "jump" | "nonfinite" | "shape" | "nothing_compared"
    )
    layer: int | None = None
    module: str | None = None
    tensor: str | None = None
    rel_l2: float | None = None  # error of the named tensor
    cosine: float | None = None
    received_rel_l2: float | None = None  # error of what the named module received
    growth: float | None = None  # rel_l2 / max(received_rel_l2, noise_floor)
    layer_growth: float | None = None
    noise_floor: float = 0.0
    op: str | None = None  # "<module call>/<aten overload>#k" where the error jumps (op-level captures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "reason": self.reason,
            "layer": self.layer,
            "module": self.module,
            "op": self.op,
            "tensor": self.tensor,
            "rel_l2": json_float(self.rel_l2),
            "cosine": json_float(self.cosine),
            "received_rel_l2": json_float(self.received_rel_l2),
            "growth": json_float(self.growth),
            "layer_growth": json_float(self.layer_growth),
            "noise_floor": self.noise_floor,
        }


@dataclass(frozen=True)
class Localization:
    """What :func:`precdiff.compare.localize.localize` concludes from the tensor comparisons."""

    verdict: Verdict
    layers: tuple[LayerSummary, ...]


@dataclass(frozen=True)
class CaptureRef:
    """Which file a side came from and whether it was complete."""

    path: str
    complete: bool
    dtype: str | None
    device: str | None
    kernels: str | None = None  # "standard" | "batch-invariant"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "complete": self.complete,
            "dtype": self.dtype,
            "device": self.device,
            "kernels": self.kernels,
        }


@dataclass(frozen=True)
class MassiveToken:
    """A prompt position whose reference norm dwarfs the others' in some layer output."""

    position: int
    token_id: int | None
    token_text: str | None  # None: the captures do not hold the tokenizer's text of the token
    norm_ratio: float  # largest (token norm / median token norm) over the stage outputs
    first_stage: str  # label of the first stage output where it is massive

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "token_id": self.token_id,
            "token_text": self.token_text,
            "norm_ratio": json_float(self.norm_ratio),
            "first_stage": self.first_stage,
        }


@dataclass(frozen=True)
class Comparison:
    """Everything ``precdiff compare`` found; ``bool(c)`` is True when within thresholds."""

    a: CaptureRef
    b: CaptureRef
    verdict: Verdict
    tensors: tuple[TensorComparison, ...]  # forward order of A
    layers: tuple[LayerSummary, ...]
    unmatched_a: tuple[str, ...]  # only in A
    unmatched_b: tuple[str, ...]  # only in B
    differences: tuple[Difference, ...]
    forced: bool
    logprobs: LogprobComparison | None
    generation: GenerationComparison | None
    warnings: tuple[str, ...]
    top: tuple[str, ...]  # names of the tensors with the largest rel-L2, largest first
    reference: ReferenceComparison | None = None  # A and B against a float64 capture (--reference)
    ops: OpDrillDown | None = None  # op-level pairing and drill-down; None unless both are op level
    massive_tokens: tuple[MassiveToken, ...] = ()
    input_ids: tuple[int, ...] = ()
    expected_exact: bool = False  # both runs share every numerics setting: any difference is signal
    prompt_tokens: tuple[str, ...] | None = None  # text of each input id (None: no tokenizer known)

    def __bool__(self) -> bool:
        return self.verdict.status != STATUS_DIVERGED

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.to_dict(),
            "captures": {"a": self.a.to_dict(), "b": self.b.to_dict()},
            "comparability": {
                "forced": self.forced,
                "differences": [d.to_dict() for d in self.differences],
            },
            "warnings": list(self.warnings),
            "layers": [layer.to_dict() for layer in self.layers],
            "tensors": [t.to_dict() for t in self.tensors],
            "top": list(self.top),
            "unmatched": {"a_only": list(self.unmatched_a), "b_only": list(self.unmatched_b)},
            "logprobs": self.logprobs.to_dict() if self.logprobs else None,
            "generation": self.generation.to_dict() if self.generation else None,
            "reference": self.reference.to_dict() if self.reference else None,
            "ops": self.ops.to_dict() if self.ops else None,
            "noise_model": {"expected_exact": self.expected_exact},
            "massive_tokens": [m.to_dict() for m in self.massive_tokens],
            "prompt_tokens": None if self.prompt_tokens is None else list(self.prompt_tokens[:MAX_LISTED]),
            "token_errors": {
                "token_ids": list(self.input_ids),
                "stages": [
                    {"label": s.label, "output": s.output, "rel_l2": [json_float(v) for v in s.token_rel_l2]}
                    for s in self.layers
                    if s.token_rel_l2
                ],
            },
        }
