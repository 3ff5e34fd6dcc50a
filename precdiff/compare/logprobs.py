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
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from precdiff.compare.results import GenerationComparison, LogprobComparison
from precdiff.compare.tolerances import logit_ulp, near_tie_nats, near_tie_nats_at
from precdiff.store.reader import Generation, TopK

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


def compare_topk(a: TopK, b: TopK) -> LogprobComparison:
    """Per-position KL, top-1 agreement and largest |Δlogprob| of two prompt top-k records.

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
    )


def compare_generation(
    a: Generation, b: Generation, near_tie_threshold: float | None, codes: tuple[str, ...]
) -> GenerationComparison:
    """First step whose greedy token differs, with both sides' top-1/top-2 margins there.

    The flip is a *near-tie* when both margins are within the threshold (nats): both sides were almost
    undecided, so rounding alone can explain the different choice. The threshold is
    ``near_tie_threshold`` when given; else a few ulps of the larger top logit of that step in the run's
    dtype (:func:`~precdiff.compare.tolerances.near_tie_nats_at`), or, for captures without top
    logits, :func:`~precdiff.compare.tolerances.near_tie_nats`.
    """
    ids_a, ids_b = a.ids.astype(np.int64), b.ids.astype(np.int64)
    common = min(ids_a.size, ids_b.size)
    differing = np.flatnonzero(ids_a[:common] != ids_b[:common])
    if differing.size == 0:
        threshold = near_tie_threshold if near_tie_threshold is not None else near_tie_nats(*codes)
        return GenerationComparison(
            int(ids_a.size), int(ids_b.size), common, None, None, None, None, None, None, threshold
        )
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
    )
