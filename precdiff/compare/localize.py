"""Where does the error jump? From per-tensor comparisons to a verdict and a per-layer profile.

Input: the :class:`~precdiff.compare.results.TensorComparison` of every tensor in forward order,
each already carrying its rel-L2 and the noise floor of its dtype pair (see
:mod:`precdiff.compare.tolerances` for the floor formula). Nothing here reads files.

The forward pass is cut into *stages*: everything before the first decoder layer (embeddings,
rotary tables; index ``-1``), each decoder layer ``i`` (tensors named ``<layers_path>.<i>...``), and
everything after the last layer (final norm, ``lm_head``; index ``N``). Only float tensors whose
shapes match and that have a token axis take part (see ``token_aligned`` below).

1. **Non-finite first.** A tensor whose NaN/Inf pattern differs between A and B diverged and no
   norm can measure by how much: the first such tensor in forward order is the verdict.
2. **Layer.** A stage's error is the largest error of its tensors (the layer output alone can hide
   a module whose error is attenuated on its way out, e.g. a perturbed ``k_proj`` under a softmax
   that barely moves); what it *received* is the error of the previous stage's output (the tensor
   ``<layers_path>.<i>``, or the last tensor of the stage). A tensor's *error* is
   ``rel_l2_robust = max(whole-tensor rel-L2, rel-L2 without the massive-activation tokens)``
   (:mod:`precdiff.compare.per_token`): in trained models one attention-sink token can carry 100–1000×
   the norm of the others, and a whole-tensor rel-L2 then measures that token only and hides an error
   on every other token. Why this aggregate and not a percentile of per-token rel-L2: it *is* the
   whole-tensor rel-L2 when no token is massive (every threshold and test calibrated on it still
   holds), it still counts a fault confined to a few ordinary tokens (diluted, not cut off as a
   percentile would), and the max keeps a fault on the massive token itself.
   The stage's growth follows the noise model of :mod:`precdiff.compare.noise`:
   ``error / max(received · typical, floor_after(received))`` — runs that share every numerics setting
   have floor 0 (any difference is signal, growth from exact zero is infinite); otherwise the dtype
   floor applies while nothing was received and 1/8 of it after, and ``typical`` (the median growth of
   the other stages) normalises how fast noise grows in this run. So a module at 1e-2 that received
   2e-3 in a bf16-vs-fp32 pair is a jump below the 3.1e-2 dtype floor, while smooth accumulation (every
   layer ×1.15) normalises to ×1. The jump stage is the one with the largest growth of at least
   ``MIN_JUMP_GROWTH`` whose culprit module (3.) also grows that much (several modules amplifying
   rounding a little each can lift a stage's worst tensor ×2, but no single module). Ties go to the
   earlier stage. If no stage jumps, the status is ``within_noise``/``accumulated`` (or ``match``
   when everything is bitwise equal, ``drift`` beyond ``DRIFT_LIMIT`` floors).
3. **Module.** Inside the jump stage each output tensor ``t`` of module ``M`` gets a growth as above,
   its ``typical`` taken from the same module in the other layers and its received error
   ``received(t)``: the largest error among the
   stage's tensors that ended before ``M``'s first descendant did (forward order is the order
   modules *end*, so these ran before ``M`` started) and the stage's own received error — an upper
   bound of what actually fed ``M`` that needs no knowledge of the architecture. When the capture
   holds ``M``'s inputs (``--save-inputs``), their error is used instead: it is exact. The tensor
   with the largest growth wins; then, preferring leaf modules over containers, a descendant module
   replaces it while the descendant's growth is at least ``1 / LEAF_PREFERENCE`` of it (a container
   and its last child carry the same error; the child is the more precise answer).

Discrete flips: an integer tensor inside a stage (MoE router top-k indices) that differs while
every float tensor before it in that stage is within noise means rounding flipped a discrete choice.
The errors that follow in that stage, up to ``FLIP_SCALE * sqrt(share of flipped entries)``, are
explained by the flip: the stage is not a jump candidate (its output error still counts as what
the next stage received). Growth itself is always measured over the plain noise floor, so a real
fault that exceeds the bound keeps its full growth. When every stage above
the floor is explained this way the status is ``within_noise`` with reason ``discrete_flip``.
A real fault in the same layer *after* the flip is masked by it unless it exceeds that bound.

``token_aligned``: tensors with no axis of the prompt's length (MoE dispatch buffers such as the
rows inside fused ``mlp.experts``, per-expert outputs) are ordered by routing; a rounding-level
router difference permutes their rows and gives them huge but meaningless rel-L2. They are listed
in the report but do not take part here (unless nothing else does).
"""

from __future__ import annotations

from collections.abc import Sequence

from precdiff.compare.formatting import fmt_growth, fmt_rel
from precdiff.compare.noise import canonical, normalized_growth, raw_growth, typical_growths
from precdiff.compare.results import (
    SHAPE_MISMATCH,
    STATUS_DIVERGED,
    STATUS_MATCH,
    STATUS_WITHIN_NOISE,
    LayerSummary,
    Localization,
    TensorComparison,
    Verdict,
)
from precdiff.compare.stages import (
    Stage,
    candidate_tensors,
    err,
    group_stages,
    raw_err,
    stage_label,
    stage_output,
    where_label,
)

# A descendant replaces its container when its growth is at least 1/LEAF_PREFERENCE of the
# container's: e.g. gate_proj's error passes through act_fn and down_proj to the mlp output slightly
# amplified, so ``mlp`` can out-grow ``mlp.gate_proj`` by a little; it never does by 4x.
LEAF_PREFERENCE = 4.0

# A stage is a jump only if its error is at least this many times what it received (or the floor).
# Rounding accumulates smoothly through the residual stream: bf16-vs-fp32 on a 16-layer 1B Llama grows
# by ×1.0–1.4 per layer and crosses the bf16 floor half-way (H100, reports/2026-11-22_h100_llama1b);
# a real fault multiplies the error (×5 to ×1000 in the planted-fault tests).
MIN_JUMP_GROWTH = 2.0

# Errors that grow without a jump are accumulated rounding only while they stay within this many noise
# floors (the 1.1B Llama bf16-vs-fp32 run peaked at 1.4 floors); beyond it the verdict is "drift".
DRIFT_LIMIT = 4.0


def _stage_ratios(stages: Sequence[Stage]) -> tuple[list[float], list[float], list[float]]:
    """Per stage: what it received and its growth normalised by the other stages' (precdiff.compare.noise)."""
    received, ratios = [], {}
    flowing = 0.0
    for stage in stages:
        worst = max(stage.tensors, key=err)
        floor = max(t.noise_floor for t in stage.tensors)
        received.append(flowing)
        ratios[str(stage.index)] = ("stage", stage.index, flowing, raw_growth(err(worst), flowing, floor))
        flowing = raw_err(stage_output(stage))
    typical = typical_growths(ratios)
    growths = [
        normalized_growth(
            err(max(stage.tensors, key=err)),
            received[i],
            max(t.noise_floor for t in stage.tensors),
            typical[str(stage.index)],
        )
        for i, stage in enumerate(stages)
    ]
    return received, [typical[str(s.index)] for s in stages], growths


def _summaries(stages: Sequence[Stage], last: int) -> list[LayerSummary]:
    summaries: list[LayerSummary] = []
    received_all, typical, growths = _stage_ratios(stages)
    for i, stage in enumerate(stages):
        output = stage_output(stage)
        worst = max(stage.tensors, key=err)
        floor = max(t.noise_floor for t in stage.tensors)
        # A flip explains the stage when the errors left after discounting the flipped tokens are noise,
        # or (tensors without a token axis) when they stay under the flip bound.
        discounted = any(t.rel_l2_unflipped is not None for t in stage.tensors)
        explained = stage.flip is not None and (
            not any(t.above_floor for t in stage.tensors) if discounted else err(worst) <= stage.flip_floor
        )
        summaries.append(
            LayerSummary(
                index=stage.index,
                label=stage_label(stage.index, last),
                output=output.name,
                rel_l2=output.rel_l2,
                cosine=output.cosine,
                max_rel_l2=worst.effective_rel_l2,
                worst=worst.name,
                received=received_all[i],
                growth=growths[i],
                noise_floor=floor,
                above_floor=any(t.raw_above_floor for t in stage.tensors),
                discrete_flip=stage.flip.name if explained and stage.flip is not None else None,
                typical_growth=typical[i],
                token_rel_l2=output.token_rel_l2,
            )
        )
    return summaries


def _is_within(module: str, container: str) -> bool:
    return module == container or module.startswith(container + ".")


def _module_ratios(stage: Stage, received_by_stage: float) -> dict[str, tuple[float, float]]:
    """Tensor name -> (received error, plain growth ratio) for every output tensor of the stage."""
    result: dict[str, tuple[float, float]] = {}
    tensors = stage.tensors
    for i, t in enumerate(tensors):
        if t.role != "output":
            continue
        inputs = [
            x for x in tensors if x.role == "input" and x.name.startswith(t.name.split("[")[0] + ":input")
        ]
        if inputs:
            received = max(err(x) for x in inputs)
        else:
            start = next(j for j, x in enumerate(tensors) if _is_within(x.module, t.module))
            received = max([received_by_stage] + [err(x) for x in tensors[: min(start, i)]])
        result[t.name] = (received, raw_growth(err(t), received, t.noise_floor))
    return result


def _module_growths(
    stages: Sequence[Stage], layers: Sequence[LayerSummary]
) -> dict[str, tuple[float, float]]:
    """Tensor name -> (received, growth normalised by the same tensor's growth in the other stages)."""
    ratios: dict[str, tuple[str, int, float, float]] = {}
    received: dict[str, float] = {}
    by_name: dict[str, TensorComparison] = {}
    for stage, summary in zip(stages, layers):
        for name, (got, ratio) in _module_ratios(stage, summary.received or 0.0).items():
            ratios[name] = (
                canonical(name, stage.index if stage.index >= 0 else None),
                stage.index,
                got,
                ratio,
            )
            received[name] = got
        by_name.update((t.name, t) for t in stage.tensors)
    typical = typical_growths(ratios)
    return {
        name: (got, normalized_growth(err(by_name[name]), got, by_name[name].noise_floor, typical[name]))
        for name, got in received.items()
    }


def _culprit(stage: Stage, growths: dict[str, tuple[float, float]]) -> tuple[TensorComparison, float, float]:
    outputs = [t for t in stage.tensors if t.name in growths]

    def best_of(pool: Sequence[TensorComparison]) -> TensorComparison:
        # max() keeps the first of equal values: ties go to the earlier tensor (the originator).
        return max(pool, key=lambda t: growths[t.name][1])

    best = best_of(outputs)
    while True:
        deeper = [t for t in outputs if t.module != best.module and _is_within(t.module, best.module)]
        if not deeper:
            break
        candidate = best_of(deeper)
        if growths[candidate.name][1] * LEAF_PREFERENCE < growths[best.name][1]:
            break
        best = candidate
    received, growth = growths[best.name]
    return best, received, growth


def localize(
    tensors: Sequence[TensorComparison], *, num_layers: int | None = None, others_exact: bool = True
) -> Localization:
    """The verdict and per-stage error profile of a comparison.

    Args:
        tensors: per-tensor comparisons in A's forward order (as in ``Comparison.tensors``).
        num_layers: number of decoder layers (from the manifest); inferred from names if ``None``.
        others_exact: whether everything not in ``tensors`` (logprobs, generation) matched bitwise;
            ``match`` requires it.

    Returns:
        A :class:`~precdiff.compare.results.Localization`.
    """
    candidates = candidate_tensors(tensors)
    stages, last = group_stages(tensors, candidates, num_layers)
    layers = tuple(_summaries(stages, last))
    floor = max((t.noise_floor for t in candidates), default=0.0)

    broken = next((t for t in tensors if t.nonfinite_mismatch), None)
    if broken is not None:
        where = f"at layer {broken.layer}" if broken.layer is not None else "outside the decoder layers"
        message = (
            f"divergence: NaN/Inf first differ {where} in {broken.name}: A has {broken.nan_a} NaN "
            f"{broken.inf_a} Inf, B has {broken.nan_b} NaN {broken.inf_b} Inf"
        )
        return Localization(
            Verdict(
                STATUS_DIVERGED,
                message,
                "nonfinite",
                layer=broken.layer,
                module=broken.module,
                tensor=broken.name,
                noise_floor=floor,
            ),
            layers,
        )

    # Growth >= MIN_JUMP_GROWTH implies an error above floor_after(received) (precdiff.compare.noise): a
    # jump may lie below the dtype floor when it multiplies what the stage received.
    jumps = [
        s for s in layers if s.discrete_flip is None and (s.growth is None or not s.growth < MIN_JUMP_GROWTH)
    ]
    # Largest growth first (sorted is stable: ties go to the earlier stage). A stage is a jump only if a
    # module in it jumps too: internal amplification spread over several modules (bf16 rounding in layer
    # 0 of a small model: ×1.1 per module) can lift a stage's worst tensor ×2 over its input.
    module_growths = _module_growths(stages, layers) if jumps else {}
    for jump in sorted(jumps, key=lambda s: -(s.growth if s.growth is not None else 0.0)):
        stage = next(s for s in stages if s.index == jump.index)
        culprit, received, growth = _culprit(stage, module_growths)
        if growth < MIN_JUMP_GROWTH:
            continue
        layer = jump.index if 0 <= jump.index < last else None
        message = (
            f"divergence jumps {where_label(jump.index, last)} in {culprit.module}: rel-L2 "
            f"{fmt_rel(received)} → {fmt_rel(err(culprit))}, growth {fmt_growth(growth)} over the error it "
            "received"
        )
        return Localization(
            Verdict(
                STATUS_DIVERGED,
                message,
                "jump",
                layer=layer,
                module=culprit.module,
                tensor=culprit.name,
                rel_l2=culprit.rel_l2,
                cosine=culprit.cosine,
                received_rel_l2=received,
                growth=growth,
                layer_growth=jump.growth,
                noise_floor=culprit.noise_floor,
            ),
            layers,
        )

    mismatched = next((t for t in tensors if t.status == SHAPE_MISMATCH), None)
    if mismatched is not None:
        message = (
            f"divergence: shapes differ first in {mismatched.name}: A {list(mismatched.shape_a)} vs "
            f"B {list(mismatched.shape_b)}"
        )
        return Localization(
            Verdict(
                STATUS_DIVERGED,
                message,
                "shape",
                layer=mismatched.layer,
                module=mismatched.module,
                tensor=mismatched.name,
                noise_floor=floor,
            ),
            layers,
        )
    if not tensors:
        return Localization(
            Verdict(STATUS_WITHIN_NOISE, "no tensor was compared", "nothing_compared"), layers
        )
    flips = [s for s in layers if s.above_floor and s.discrete_flip is not None]
    if flips:
        where = ", ".join(s.label for s in flips)
        message = (
            f"within noise: errors above the floor ({where}) follow a discrete flip caused by rounding, "
            f"first {flips[0].discrete_flip} (e.g. MoE routing); no error jumps otherwise"
        )
        return Localization(
            Verdict(
                STATUS_WITHIN_NOISE,
                message,
                "discrete_flip",
                tensor=flips[0].discrete_flip,
                noise_floor=floor,
            ),
            layers,
        )
    accumulated = [s for s in layers if s.above_floor and s.discrete_flip is None]
    if accumulated:
        steepest = max(accumulated, key=lambda s: s.growth if s.growth is not None else 0.0)
        peak = max(accumulated, key=lambda s: s.max_rel_l2 if s.max_rel_l2 is not None else 0.0)
        if (peak.max_rel_l2 or 0.0) > DRIFT_LIMIT * floor:
            # No single jump, but far beyond what rounding reaches: a fault spread over layers, or one
            # that grows slowly. Name where the error first left the noise.
            first = accumulated[0]
            stage = next(s for s in stages if s.index == first.index)
            culprit = max(stage.tensors, key=err)
            message = (
                f"divergence drifts from {first.label} ({fmt_rel(first.max_rel_l2)} in {culprit.module}) to "
                f"{fmt_rel(peak.max_rel_l2)} at {peak.label}, {(peak.max_rel_l2 or 0.0) / floor:.0f}× the noise "
                f"floor, without a single jump"
            )
            return Localization(
                Verdict(
                    STATUS_DIVERGED,
                    message,
                    "drift",
                    layer=first.index if 0 <= first.index < last else None,
                    module=culprit.module,
                    tensor=culprit.name,
                    rel_l2=culprit.rel_l2,
                    cosine=culprit.cosine,
                    growth=first.growth,
                    layer_growth=first.growth,
                    noise_floor=floor,
                ),
                layers,
            )
        message = (
            f"within noise: rel-L2 rises above the noise floor {fmt_rel(floor)} (up to "
            f"{fmt_rel(peak.max_rel_l2)} at {peak.label}) without a jump (steepest "
            f"{fmt_growth(steepest.growth)} at {steepest.label}, a jump needs ×{MIN_JUMP_GROWTH:g}): "
            "accumulated rounding"
        )
        return Localization(
            Verdict(
                STATUS_WITHIN_NOISE,
                message,
                "accumulated",
                tensor=steepest.worst,
                rel_l2=steepest.max_rel_l2,
                growth=steepest.growth,
                noise_floor=floor,
            ),
            layers,
        )
    if others_exact and all(t.exact for t in tensors):
        return Localization(
            Verdict(
                STATUS_MATCH,
                f"match: all {len(tensors)} tensors are bitwise identical",
                "identical",
                noise_floor=floor,
            ),
            layers,
        )
    worst = max(candidates, key=err) if candidates else tensors[0]
    message = (
        f"within noise: largest rel-L2 {fmt_rel(worst.rel_l2)} in {worst.name} is below the noise "
        f"floor {fmt_rel(worst.noise_floor)}"
    )
    # layer / module stay null: they name a divergence, and there is none (tensor says where the max is).
    return Localization(
        Verdict(
            STATUS_WITHIN_NOISE,
            message,
            "noise",
            tensor=worst.name,
            rel_l2=worst.rel_l2,
            cosine=worst.cosine,
            noise_floor=worst.noise_floor,
        ),
        layers,
    )
