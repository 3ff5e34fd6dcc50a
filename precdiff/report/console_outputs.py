"""The console lines of a comparison's outputs: prompt logprobs and the greedy generations."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape

from precdiff.compare.results import GenerationComparison, LogprobComparison


def _num(value: float | None, spec: str = ".2e") -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "nan"
    return "inf" if math.isinf(value) else format(value, spec)


def _chosen(lp: LogprobComparison) -> str:
    """Largest |Δlogprob| of the chosen token and where, or why there is none."""
    known = [(abs(v), t) for t, v in enumerate(lp.chosen_delta) if v is not None]
    if not known:
        return "chosen-token Δlogprob unknown (the tokens that came next are outside the top-k)"
    value, position = max(known)
    token = lp.chosen_tokens[position] if lp.chosen_tokens is not None else None
    shown = f" {escape(repr(token))}" if token is not None else ""
    return (
        f"chosen-token |Δlogprob| max {_num(value)} at position {position}{shown} "
        f"(known at {len(known)}/{lp.positions})"
    )


def logprobs_line(lp: LogprobComparison) -> str:
    """One line: KL, top-1 agreement, top-k overlap, chosen-token Δlogprob, largest |Δlogprob|."""
    overlap = (
        "top-k overlap – (a side has no candidates)"
        if lp.topk_overlap_mean is None or lp.topk_overlap_min is None
        else f"top-{min(lp.k_a, lp.k_b)} overlap mean {lp.topk_overlap_mean:.1%} min {lp.topk_overlap_min:.1%}"
    )
    return (
        f"logprobs over {lp.positions} positions (top-{lp.k_a}/{lp.k_b}): KL mean {_num(lp.kl_mean)}, "
        f"max {_num(lp.kl_max)} at position {lp.kl_max_position}; top-1 agreement "
        f"{lp.top1_agreement:.1%}; {overlap}; {_chosen(lp)}; max |Δlogprob| {_num(lp.max_abs_delta)} at "
        f"position {lp.max_abs_delta_position}" + (" (identical)" if lp.exact else "")
    )


def _margin(gen: GenerationComparison, margin: float | None) -> str:
    ulps = gen.margin_ulps(margin)
    return _num(margin, ".3g") + (f" ({ulps:.3g} ulp)" if ulps is not None else "")


def _threshold_ulps(gen: GenerationComparison) -> str:
    if not gen.logit_ulp or gen.top_logit is None:
        return ""
    return f" = {gen.near_tie_threshold / gen.logit_ulp:.3g} ulp of the top logit {gen.top_logit:.4g}"


def _token(gen: GenerationComparison, side: str) -> str:
    step = gen.first_divergent_step
    token_id = gen.token_a if side == "a" else gen.token_b
    texts = gen.tokens_a if side == "a" else gen.tokens_b
    if texts is None or step is None or step >= len(texts):
        return str(token_id)
    return f"{escape(repr(texts[step]))} ({token_id})"


def generation_line(gen: GenerationComparison) -> str:
    """One line: identical, or the first differing step with both tokens, margins and the near-tie rule."""
    if gen.first_divergent_step is None:
        return f"generation: identical over {gen.identical_prefix} tokens (A {gen.steps_a}, B {gen.steps_b} steps)"
    tie = "a near-tie" if gen.near_tie else "not a near-tie"
    return (
        f"generation: first differs at step {gen.first_divergent_step} (token {_token(gen, 'a')} vs "
        f"{_token(gen, 'b')}); margins A {_margin(gen, gen.margin_a)}, B {_margin(gen, gen.margin_b)} "
        f"nats: {tie} (threshold {gen.near_tie_threshold:.3g}{_threshold_ulps(gen)})"
    )


def print_outputs(lp: LogprobComparison | None, gen: GenerationComparison | None, console: Console) -> None:
    """The logprobs and generation lines of ``precdiff compare``."""
    if lp is not None:
        console.print(logprobs_line(lp))
    if gen is not None:
        console.print(generation_line(gen))
