"""Result objects of the model's outputs compared: prompt logprobs and the greedy generations.

Part of the comparison's JSON report (``docs/compare-json.md``, *Logprobs* and *Generation*);
:mod:`precdiff.compare.results` re-exports both classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from precdiff._json import json_float

__all__ = ["MAX_LISTED", "GenerationComparison", "LogprobComparison"]

# Per-position lists in the JSON (logprobs, generation, prompt tokens) stop after this many entries so
# that a long prompt keeps the report small; summaries (means, maxima, positions) cover every position.
MAX_LISTED = 4096


@dataclass(frozen=True)
class LogprobComparison:
    """Prompt next-token distributions compared through their stored top-k."""

    positions: int
    k_a: int
    k_b: int
    kl_mean: float
    kl_max: float
    kl_max_position: int
    top1_agreement: float  # share of positions whose most likely token is the same
    max_abs_delta: float  # largest |Δlogprob| over ids in both top-k sets
    max_abs_delta_position: int
    exact: bool  # ids and logprobs identical
    kl: tuple[float, ...] = field(repr=False, default=())  # per position
    # Per position (precdiff.compare.logprobs): the token that actually came next, its text, its
    # logprob B − A (None where a side does not know it) and |topk_A ∩ topk_B| / min(k_a, k_b).
    chosen_ids: tuple[int | None, ...] = field(repr=False, default=())
    chosen_tokens: tuple[str | None, ...] | None = field(repr=False, default=None)
    chosen_delta: tuple[float | None, ...] = field(repr=False, default=())
    topk_overlap: tuple[float | None, ...] = field(repr=False, default=())
    topk_overlap_mean: float | None = None  # None when a side has no candidate
    topk_overlap_min: float | None = None
    start_position: int = 0  # prompt position of the first row (engines that skip leading rows)

    def to_dict(self) -> dict[str, Any]:
        listed = slice(0, MAX_LISTED)
        measured = [abs(v) for v in self.chosen_delta if v is not None]
        return {
            "positions": self.positions,
            "k_a": self.k_a,
            "k_b": self.k_b,
            "kl_mean": json_float(self.kl_mean),
            "kl_max": json_float(self.kl_max),
            "kl_max_position": self.kl_max_position,
            "top1_agreement": self.top1_agreement,
            "max_abs_delta": json_float(self.max_abs_delta),
            "max_abs_delta_position": self.max_abs_delta_position,
            "exact": self.exact,
            "topk_overlap_k": min(self.k_a, self.k_b),
            "topk_overlap_mean": json_float(self.topk_overlap_mean),
            "topk_overlap_min": json_float(self.topk_overlap_min),
            "chosen_delta_max_abs": json_float(max(measured)) if measured else None,
            "start_position": self.start_position,
            "listed_positions": min(self.positions, MAX_LISTED),
            "kl": [json_float(v) for v in self.kl[listed]],
            "chosen_ids": list(self.chosen_ids[listed]),
            "chosen_tokens": None if self.chosen_tokens is None else list(self.chosen_tokens[listed]),
            "chosen_delta": [json_float(v) for v in self.chosen_delta[listed]],
            "topk_overlap": [json_float(v) for v in self.topk_overlap[listed]],
        }


@dataclass(frozen=True)
class GenerationComparison:
    """The two greedy continuations, step by step."""

    steps_a: int
    steps_b: int
    identical_prefix: int  # number of identical leading tokens
    first_divergent_step: int | None  # None: identical over the common length
    token_a: int | None
    token_b: int | None
    margin_a: float | None  # top-1 minus top-2 logprob of A at that step
    margin_b: float | None
    near_tie: bool | None  # both margins within near_tie_threshold
    near_tie_threshold: float
    top_logit: float | None = None  # larger |top-1 logit| of the two sides at that step (None: not stored)
    logit_ulp: float | None = None  # one ulp of top_logit in the run's dtype
    near_tie_rule: str = ""  # how near_tie_threshold was set, with its numbers
    ids_a: tuple[int, ...] = field(repr=False, default=())  # both greedy continuations
    ids_b: tuple[int, ...] = field(repr=False, default=())
    tokens_a: tuple[str, ...] | None = field(repr=False, default=None)  # their texts (None: no tokenizer)
    tokens_b: tuple[str, ...] | None = field(repr=False, default=None)

    def margin_ulps(self, margin: float | None) -> float | None:
        """A margin in ulps of the top logit (None where the top logit is unknown)."""
        if margin is None or not self.logit_ulp:
            return None
        return margin / self.logit_ulp

    @property
    def exact(self) -> bool:
        return self.first_divergent_step is None and self.steps_a == self.steps_b

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps_a": self.steps_a,
            "steps_b": self.steps_b,
            "identical_prefix": self.identical_prefix,
            "first_divergent_step": self.first_divergent_step,
            "token_a": self.token_a,
            "token_b": self.token_b,
            "margin_a": json_float(self.margin_a),
            "margin_b": json_float(self.margin_b),
            "near_tie": self.near_tie,
            "near_tie_threshold": self.near_tie_threshold,
            "top_logit": json_float(self.top_logit),
            "logit_ulp": json_float(self.logit_ulp),
            "margin_a_ulps": json_float(self.margin_ulps(self.margin_a)),
            "margin_b_ulps": json_float(self.margin_ulps(self.margin_b)),
            "near_tie_rule": self.near_tie_rule,
            "exact": self.exact,
            "ids_a": list(self.ids_a[:MAX_LISTED]),
            "ids_b": list(self.ids_b[:MAX_LISTED]),
            "tokens_a": None if self.tokens_a is None else list(self.tokens_a[:MAX_LISTED]),
            "tokens_b": None if self.tokens_b is None else list(self.tokens_b[:MAX_LISTED]),
        }
