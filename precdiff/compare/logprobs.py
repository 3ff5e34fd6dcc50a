"""Next-token distributions and greedy generations of two captures, compared through their top-k.

A capture stores, per prompt position, the top-k (k≈20) token ids and their logprobs, not the full
vocabulary. KL(A‖B) is computed over a coarse partition of the vocabulary: one bucket per id in the
union of both top-k sets, plus one "rest" bucket with the remaining mass. When both sides know the
mass of every union id this is exactly the KL of the coarse-grained distributions, a *lower bound*
of the full-vocabulary KL (data-processing inequality). When an id is in one side's top-k only, the
other side's mass for it is unknown but at most its own k-th probability; it is estimated as that
bound, shrunk if needed so the side's masses sum to at most 1 — then the value is an approximation
(usually still below the full KL, since the rest bucket merges the tail). Masses below ``1e-30`` are
clamped to it to keep the logarithm finite.

Beside the distributions: per position the Δlogprob (B − A) of the *chosen* token, the one that
actually came next (the next prompt token; the first generated one after the last), known where a side
has it in its top-k (or gave it apart, as engines echoing the prompt do); and the top-k overlap
``|topk_A ∩ topk_B| / k``, ``k`` the smaller of the two sides' k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from precdiff.compare.results import GenerationComparison, LogprobComparison
from precdiff.compare.token_text import display_tokenizer, token_texts
from precdiff.compare.tolerances import (
    NEAR_TIE_LOGIT_ULPS,
    NEAR_TIE_MIN_NATS,
    NEAR_TIE_ULPS,
    less_precise,
    logit_ulp,
    near_tie_nats,
    near_tie_nats_at,
)
from precdiff.store.reader import Capture, Generation, TopK

_TINY = 1e-30


def _bucket_masses(
    ids: NDArray[np.int64], logprobs: NDArray[np.float64], union: NDArray[np.int64]
) -> tuple[NDArray[np.float64], float]:
    """This side's mass for each union id (estimated where it is not in its top-k) and the rest."""
    probs = np.exp(logprobs)
    known = dict(zip(ids.tolist(), probs.tolist()))
    missing = [i for i in union.tolist() if i not in known]
    known_mass = float(probs.sum())
    estimate = 0.0
    if missing:
        # An id outside the top-k has at most the k-th probability; never let the total exceed 1,
        # and share the unknown mass with the rest bucket too (+1): a rest of 0 would make any mass
        # the other side puts outside the union cost log(1/1e-30) ≈ 69 nats per unit.
        estimate = min(float(probs.min()), max(0.0, 1.0 - known_mass) / (len(missing) + 1))
    masses = np.array([known.get(i, estimate) for i in union.tolist()], dtype=np.float64)
    rest = max(0.0, 1.0 - float(masses.sum()))
    return masses, rest


def position_kl(
    ids_a: NDArray[np.int64], lp_a: NDArray[np.float64], ids_b: NDArray[np.int64], lp_b: NDArray[np.float64]
) -> float:
    """KL(A‖B) in nats at one position, over the union of both top-k sets plus a rest bucket."""
    union = np.union1d(ids_a, ids_b)
    p, rest_p = _bucket_masses(ids_a, lp_a, union)
    q, rest_q = _bucket_masses(ids_b, lp_b, union)
    p = np.append(p, rest_p)
    q = np.maximum(np.append(q, rest_q), _TINY)
    present = p > 0.0
    kl = float(np.sum(p[present] * (np.log(np.maximum(p[present], _TINY)) - np.log(q[present]))))
    return max(0.0, kl)  # estimated buckets can make a numerically tiny negative value


@dataclass(frozen=True)
class CaptureTexts:
    """How the reports show two captures' tokens: the tokenizer for their texts, or notes on why none."""

    tokenizer: Any
    notes: tuple[str, ...]

    @classmethod
    def of(cls, a: Capture, b: Capture, override: str | None) -> CaptureTexts:
        """The tokenizer of ``override`` (``--tokenizer``), else of the model a capture's manifest names."""
        sources = [str(c.manifest.model.source) for c in (a, b) if c.manifest and c.manifest.model.source]
        tokenizer, why = display_tokenizer(override or (sources[0] if sources else None))
        return cls(tokenizer, () if why is None else (why,))

    @staticmethod
    def chosen(cap: Capture, top: TopK | None) -> NDArray[np.int64] | None:
        """The token that came next after each of ``cap``'s prompt rows (:func:`next_tokens`)."""
        if top is None:
            return None
        generation = cap.generation
        first = int(generation.ids[0]) if generation is not None and generation.ids.size else None
        return next_tokens(cap.input_ids, first, top.ids.shape[0])

    def prompt(self, cap: Capture) -> tuple[str, ...] | None:
        """The text of each of ``cap``'s input ids (None without a tokenizer)."""
        return token_texts(self.tokenizer, cap.input_ids)


def one_sided_topk(a: Capture, b: Capture) -> tuple[str, ...]:
    """The warning when only one capture holds prompt top-k logprobs: nothing of them is compared."""
    lacking = [c.path for c in (a, b) if c.prompt_logprobs is None]
    if len(lacking) != 1:
        return ()
    return (
        f"prompt logprobs: {lacking[0]} has no top-k candidates for the prompt, so KL, top-k overlap and "
        "Δlogprob are null",
    )


def next_tokens(
    prompt_ids: Sequence[int] | None, first_generated: int | None, rows: int, start: int = 0
) -> NDArray[np.int64]:
    """The token that actually came next after each top-k row (the *chosen* token), ``-1`` where unknown.

    Row ``r`` stands for prompt position ``start + r`` and predicts prompt token ``start + r + 1``; the
    row of the last prompt token predicts the first generated token.
    """
    chosen = np.full(rows, -1, dtype=np.int64)
    ids = list(prompt_ids or ())
    for r in range(rows):
        after = start + r + 1
        if after < len(ids):
            chosen[r] = ids[after]
        elif after == len(ids) and first_generated is not None:
            chosen[r] = first_generated
    return chosen


def _chosen_logprobs(
    ids: NDArray[np.int64], lp: NDArray[np.float64], chosen: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Each row's logprob of its chosen token, from the row's top-k; NaN where the token is not in it."""
    out = np.full(chosen.shape[0], np.nan)
    for t, token in enumerate(chosen.tolist()):
        hit = np.flatnonzero(ids[t] == token)
        if token >= 0 and hit.size:
            out[t] = lp[t][int(hit[0])]
    return out


def _overlap(
    ids_a: NDArray[np.int64], lp_a: NDArray[np.float64], ids_b: NDArray[np.int64], lp_b: NDArray[np.float64]
) -> tuple[float | None, ...]:
    """Per row ``|topk_A ∩ topk_B| / k``, ``k`` the smaller of both sides' k (each side cut to its best
    ``k``); ``None`` rows when a side has no candidate. Negative ids (an engine's lossily decoded
    candidates, see :mod:`precdiff.engines.tokenmap`) name no token and match nothing."""
    k = min(ids_a.shape[1], ids_b.shape[1]) if ids_a.ndim == 2 and ids_b.ndim == 2 else 0
    if k == 0:
        return tuple(None for _ in range(ids_a.shape[0]))
    out: list[float | None] = []
    for t in range(ids_a.shape[0]):
        best_a = ids_a[t][np.argsort(-lp_a[t], kind="stable")[:k]]
        best_b = ids_b[t][np.argsort(-lp_b[t], kind="stable")[:k]]
        common = np.intersect1d(best_a[best_a >= 0], best_b[best_b >= 0])
        out.append(common.size / k)
    return tuple(out)


def compare_topk(
    a: TopK,
    b: TopK,
    chosen: NDArray[np.int64] | None = None,
    known: tuple[NDArray[np.float64] | None, NDArray[np.float64] | None] = (None, None),
    tokenizer: Any = None,
) -> LogprobComparison:
    """Per-position KL, top-1 agreement, top-k overlap, |Δlogprob| of two prompt top-k records.

    Args:
        a, b: the two sides' top-k rows ([n, k] ids and logprobs).
        chosen: per row, the token that actually came next (:func:`next_tokens`); its Δlogprob
            (B − A) is listed per position where both sides know its logprob.
        known: per row, a side's own logprob of the chosen token where it gave one apart from its
            top-k (an engine's echoed prompt logprobs), NaN elsewhere; otherwise it is looked up in
            the top-k (unknown when the token is not among them).
        tokenizer: shows the chosen tokens as text (:mod:`precdiff.compare.token_text`).

    Positions beyond the shorter record are ignored (only reachable with ``force``).
    """
    n = min(a.ids.shape[0], b.ids.shape[0])
    ids_a, ids_b = a.ids[:n].astype(np.int64), b.ids[:n].astype(np.int64)
    lp_a, lp_b = a.logprobs[:n].astype(np.float64), b.logprobs[:n].astype(np.float64)
    kl = tuple(position_kl(ids_a[t], lp_a[t], ids_b[t], lp_b[t]) for t in range(n))
    top1_a = ids_a[np.arange(n), np.argmax(lp_a, axis=1)] if n else ids_a[:0, 0]
    top1_b = ids_b[np.arange(n), np.argmax(lp_b, axis=1)] if n else ids_b[:0, 0]
    max_delta, max_delta_at = 0.0, 0
    for t in range(n):
        common, at_a, at_b = np.intersect1d(ids_a[t], ids_b[t], return_indices=True)
        if common.size:
            delta = float(np.max(np.abs(lp_a[t][at_a] - lp_b[t][at_b])))
            if delta > max_delta or math.isnan(delta):
                max_delta, max_delta_at = delta, t
    kl_array = np.asarray(kl, dtype=np.float64)
    exact = (
        a.ids.shape == b.ids.shape and np.array_equal(a.ids, b.ids) and np.array_equal(a.logprobs, b.logprobs)
    )
    chosen_ids = chosen[:n] if chosen is not None else np.full(n, -1, dtype=np.int64)
    sides = []
    for ids, lp, own in ((ids_a, lp_a, known[0]), (ids_b, lp_b, known[1])):
        looked_up = _chosen_logprobs(ids, lp, chosen_ids)
        sides.append(looked_up if own is None else np.where(np.isnan(own[:n]), looked_up, own[:n]))
    chosen_delta = sides[1] - sides[0]
    overlap = _overlap(ids_a, lp_a, ids_b, lp_b)
    measured = [v for v in overlap if v is not None]
    texts = token_texts(tokenizer, [i for i in chosen_ids.tolist() if i >= 0])
    shown = iter(texts or ())
    return LogprobComparison(
        positions=n,
        k_a=int(a.ids.shape[1]) if a.ids.ndim == 2 else 0,
        k_b=int(b.ids.shape[1]) if b.ids.ndim == 2 else 0,
        kl_mean=float(kl_array.mean()) if n else 0.0,
        kl_max=float(kl_array.max()) if n else 0.0,
        kl_max_position=int(np.argmax(kl_array)) if n else 0,
        top1_agreement=float(np.mean(top1_a == top1_b)) if n else 1.0,
        max_abs_delta=max_delta,
        max_abs_delta_position=max_delta_at,
        exact=bool(exact),
        kl=kl,
        chosen_ids=tuple(i if i >= 0 else None for i in chosen_ids.tolist()),
        chosen_tokens=None
        if texts is None
        else tuple(next(shown) if i >= 0 else None for i in chosen_ids.tolist()),
        chosen_delta=tuple(None if math.isnan(v) else float(v) for v in chosen_delta.tolist()),
        topk_overlap=overlap,
        topk_overlap_mean=float(np.mean(measured)) if measured else None,
        topk_overlap_min=float(np.min(measured)) if measured else None,
    )


def _rule(threshold: float, given: bool, top: float | None, codes: tuple[str, ...]) -> str:
    """The near-tie rule as applied, in words and numbers."""
    if given:
        return f"both margins ≤ {threshold:.4g} nats (given: --near-tie / near_tie_nats=)"
    dtype = less_precise(*codes).code if codes else "?"
    if top is not None:
        return (
            f"both margins ≤ max({NEAR_TIE_MIN_NATS:g}, {NEAR_TIE_LOGIT_ULPS:g}·ulp({top:.4g}) in {dtype}) = "
            f"{threshold:.4g} nats"
        )
    return (
        f"both margins ≤ max({NEAR_TIE_MIN_NATS:g}, {NEAR_TIE_ULPS:g}·u({dtype})) = {threshold:.4g} nats "
        "(no top logit stored)"
    )


def compare_generation(
    a: Generation,
    b: Generation,
    near_tie_threshold: float | None,
    codes: tuple[str, ...],
    tokenizer: Any = None,
) -> GenerationComparison:
    """First step whose greedy token differs, with both sides' top-1/top-2 margins there.

    The flip is a *near-tie* when both margins are within the threshold (nats): both sides were almost
    undecided, so rounding alone can explain the different choice. The threshold is
    ``near_tie_threshold`` when given; else a few ulps of the larger top logit of that step in the run's
    dtype (:func:`~precdiff.compare.tolerances.near_tie_nats_at`), or, for captures without top
    logits, :func:`~precdiff.compare.tolerances.near_tie_nats`. Both continuations are kept (ids, and
    their texts when ``tokenizer`` is given) for the reports.
    """
    ids_a, ids_b = a.ids.astype(np.int64), b.ids.astype(np.int64)
    common = min(ids_a.size, ids_b.size)
    differing = np.flatnonzero(ids_a[:common] != ids_b[:common])
    sequences: dict[str, Any] = dict(
        ids_a=tuple(int(i) for i in ids_a.tolist()),
        ids_b=tuple(int(i) for i in ids_b.tolist()),
        tokens_a=token_texts(tokenizer, ids_a.tolist()),
        tokens_b=token_texts(tokenizer, ids_b.tolist()),
    )
    given = near_tie_threshold is not None
    if differing.size == 0:
        threshold = near_tie_threshold if near_tie_threshold is not None else near_tie_nats(*codes)
        rule = "no differing step; a flip would be a near-tie when " + _rule(threshold, given, None, codes)
        return GenerationComparison(
            int(ids_a.size), int(ids_b.size), common, None, None, None, None, None, None, threshold,
            near_tie_rule=rule, **sequences,
        )  # fmt: skip
    step = int(differing[0])
    margin_a, margin_b = float(a.margin[step]), float(b.margin[step])
    top = None
    if a.top_logit is not None and b.top_logit is not None:
        top = max(abs(float(a.top_logit[step])), abs(float(b.top_logit[step])))
    ulp = logit_ulp(top, *codes) if top is not None else None
    if near_tie_threshold is not None:
        threshold = near_tie_threshold
    else:
        threshold = near_tie_nats_at(top, *codes) if top is not None else near_tie_nats(*codes)
    return GenerationComparison(
        steps_a=int(ids_a.size),
        steps_b=int(ids_b.size),
        identical_prefix=step,
        first_divergent_step=step,
        token_a=int(ids_a[step]),
        token_b=int(ids_b[step]),
        margin_a=margin_a,
        margin_b=margin_b,
        # "within": a margin of exactly the threshold's ulps is a tie too (one bf16 ulp at logit 20).
        near_tie=margin_a <= threshold and margin_b <= threshold,
        near_tie_threshold=threshold,
        top_logit=top,
        logit_ulp=ulp,
        near_tie_rule=_rule(threshold, given, top, codes),
        **sequences,
    )
