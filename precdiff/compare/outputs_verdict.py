"""A verdict from the model's outputs alone, for comparisons that hold no tensor.

A logprobs-only capture (``--include`` matching nothing, or an external capture of outputs only) must
still get a check that can fail, not "within noise" by default. From what exists:

- when both runs share every numerics setting (:func:`precdiff.compare.noise.numerics_identical`), any
  difference in logprobs or generation is a divergence;
- a greedy generation that parts where the margins are *not* a near-tie is a divergence;
- a prompt position whose most likely token differs while either side's top-1/top-2 margin exceeds the
  near-tie threshold of the dtype pair is a divergence;
- otherwise the outputs agree within rounding: ``within_noise`` naming KL, top-1 agreement and the first
  differing step, or ``match`` when everything is identical.
"""

from __future__ import annotations

from precdiff.compare.formatting import fmt_rel
from precdiff.compare.results import (
    STATUS_DIVERGED,
    STATUS_MATCH,
    STATUS_WITHIN_NOISE,
    GenerationComparison,
    LogprobComparison,
    Verdict,
)
from precdiff.compare.tolerances import near_tie_nats
from precdiff.store.reader import TopK


def _confident_top1_flip(a: TopK, b: TopK, threshold: float) -> int | None:
    """First prompt position whose top-1 differs with a margin beyond ``threshold`` on either side."""
    n = min(a.ids.shape[0], b.ids.shape[0])
    for t in range(n):
        if a.ids[t, 0] == b.ids[t, 0] or a.ids.shape[1] < 2 or b.ids.shape[1] < 2:
            continue
        margin_a = float(a.logprobs[t, 0] - a.logprobs[t, 1])
        margin_b = float(b.logprobs[t, 0] - b.logprobs[t, 1])
        if max(margin_a, margin_b) > threshold:
            return t
    return None


def _summary(logprobs: LogprobComparison | None, generation: GenerationComparison | None) -> str:
    parts = []
    if logprobs is not None:
        parts.append(
            f"KL mean {fmt_rel(logprobs.kl_mean)} max {fmt_rel(logprobs.kl_max)}, top-1 agreement "
            f"{logprobs.top1_agreement:.1%}"
        )
    if generation is not None:
        step = generation.first_divergent_step
        parts.append(
            f"generation identical over {generation.identical_prefix} steps"
            if step is None
            else f"generation parts at step {step}"
        )
    return "; ".join(parts)


def outputs_verdict(
    logprobs: LogprobComparison | None,
    generation: GenerationComparison | None,
    topk: tuple[TopK, TopK] | None,
    codes: tuple[str, ...],
    expected_exact: bool,
) -> Verdict:
    """The verdict of a comparison without tensors, from its logprobs and generation."""
    summary = _summary(logprobs, generation)
    exact = (logprobs is None or logprobs.exact) and (generation is None or generation.exact)
    if exact:
        return Verdict(STATUS_MATCH, f"match: no tensor compared; outputs identical ({summary})", "outputs")
    if expected_exact:
        return Verdict(
            STATUS_DIVERGED,
            f"divergence: the runs share every numerics setting, yet the outputs differ ({summary})",
            "outputs",
        )
    if generation is not None and generation.first_divergent_step is not None and not generation.near_tie:
        return Verdict(
            STATUS_DIVERGED,
            f"divergence: greedy generation parts at step {generation.first_divergent_step} without a "
            f"near-tie (margins {generation.margin_a:.3g} / {generation.margin_b:.3g} nats, threshold "
            f"{generation.near_tie_threshold:.3g}; {summary})",
            "outputs",
        )
    threshold = near_tie_nats(*codes)
    flip = _confident_top1_flip(*topk, threshold) if topk is not None else None
    if flip is not None:
        return Verdict(
            STATUS_DIVERGED,
            f"divergence: the most likely next token differs at prompt position {flip} with a margin above "
            f"{threshold:.3g} nats ({summary})",
            "outputs",
        )
    return Verdict(
        STATUS_WITHIN_NOISE,
        f"within noise: no tensor compared; the outputs differ only by rounding ({summary})",
        "outputs",
    )
