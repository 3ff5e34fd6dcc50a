"""The sensitivity measures: pure float64 functions with defined behaviour on empty input, zeros and NaN.

Every function upcasts to float64 and never mutates its input. Conventions (also in ``docs/sensitivity.md``):

- :func:`smoothed_distribution`: add-``alpha`` (Laplace) smoothing of histogram counts,
  ``p_i = (n_i + α) / (N + α·K)``; a row of zero counts becomes uniform.
- :func:`histogram_kl`: ``KL(P‖Q) = Σ p_i ln(p_i / q_i)`` in nats, per row of two count arrays over the
  same bins, both smoothed first (so every ``q_i > 0`` and the KL is finite); the mean over rows.
  No rows: NaN.
- :func:`dispersion`: ``R = (max − min) / (Q3 − Q1)`` with numpy's linear-interpolation quartiles. Empty or
  any NaN: NaN. A constant sample (``max == min``): 0.0. ``Q3 == Q1`` with ``max > min``: inf.
- :func:`histogram_quartiles`: Q1 and Q3 of values known only through a histogram, interpolating linearly
  inside the bin (values assumed uniform within a bin), so each is exact to within one bin width.
- :func:`energy_ratio`: ``σ₁ / Σσᵢ`` of a matrix's singular values. A zero matrix: 0.0 (no direction
  dominates). Any NaN: NaN.
- :func:`skewness` / :func:`skewness_from_sums`: Pearson's moment coefficient ``m₃ / m₂^{3/2}`` (population
  moments, not bias-corrected). Empty: NaN. Zero variance: 0.0.
- :func:`rel_l2_from_sums` / :func:`cosine_from_sums`: as ``precdiff.compare.metrics``: both zero → rel-L2
  0.0 and cosine 1.0; only the reference zero → rel-L2 inf, cosine 0.0; NaN in → NaN out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

DEFAULT_SMOOTHING = 1.0

ArrayLike = Any  # numpy array, torch tensor or nested sequence of numbers


def _as_float64(values: ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(values, torch.Tensor):
        return np.asarray(values.detach().to("cpu", torch.float64).numpy(), dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def smoothed_distribution(counts: ArrayLike, alpha: float = DEFAULT_SMOOTHING) -> np.ndarray[Any, Any]:
    """Probabilities from counts over the last axis, ``(n_i + α) / (N + α·K)``.

    Args:
        counts: ``[..., K]`` non-negative bin counts.
        alpha: pseudo-count added to every bin (``>= 0``). With ``alpha == 0`` a row of zeros is uniform.
    """
    n = _as_float64(counts)
    if alpha < 0:
        raise ValueError(f"smoothing alpha must be >= 0, got {alpha}")
    bins = n.shape[-1]
    totals = n.sum(axis=-1, keepdims=True) + alpha * bins
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = (n + alpha) / totals
    result: np.ndarray[Any, Any] = np.where(totals > 0, probs, 1.0 / bins)
    return result


def kl_rows(
    p_counts: ArrayLike, q_counts: ArrayLike, alpha: float = DEFAULT_SMOOTHING
) -> np.ndarray[Any, Any]:
    """``KL(P‖Q)`` in nats for each row of two ``[..., K]`` count arrays over the same bins."""
    p = smoothed_distribution(p_counts, alpha)
    q = smoothed_distribution(q_counts, alpha)
    if p.shape != q.shape:
        raise ValueError(f"histograms must have the same shape, got {p.shape} and {q.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    result: np.ndarray[Any, Any] = terms.sum(axis=-1)
    return result


def histogram_kl(p_counts: ArrayLike, q_counts: ArrayLike, alpha: float = DEFAULT_SMOOTHING) -> float:
    """Mean over rows (channels) of ``KL(P‖Q)`` between two ``[channels, K]`` count arrays.

    Example:
        >>> round(histogram_kl([[3, 1]], [[1, 3]], alpha=0.0), 6)  # 0.75·ln3 − 0.25·ln3
        0.549306
    """
    rows = kl_rows(p_counts, q_counts, alpha)
    return float(rows.mean()) if rows.size else math.nan


def dispersion(values: ArrayLike) -> float:
    """``(max − min) / (Q3 − Q1)`` of all values (any shape).

    Example:
        >>> dispersion([1, 2, 3, 4, 5, 100])  # quartiles 2.25 and 4.75
        39.6
    """
    x = _as_float64(values).ravel()
    if x.size == 0 or np.isnan(x).any():
        return math.nan
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return _ratio(float(x.max() - x.min()), float(q3 - q1))


def dispersion_from_quartiles(minimum: float, maximum: float, q1: float, q3: float) -> float:
    """R from its four ingredients, with :func:`dispersion`'s conventions."""
    if any(math.isnan(v) for v in (minimum, maximum, q1, q3)):
        return math.nan
    return _ratio(maximum - minimum, q3 - q1)


def _ratio(spread: float, iqr: float) -> float:
    if spread <= 0.0:
        return 0.0
    return spread / iqr if iqr > 0.0 else math.inf


def histogram_quartiles(counts: ArrayLike, low: float, high: float) -> tuple[float, float]:
    """Q1 and Q3 of the values counted by a histogram of equal bins over ``[low, high]``.

    The value at probability ``p`` is found where the cumulative count reaches ``p·N``, interpolated
    linearly inside its bin. No counts: ``(nan, nan)``.
    """
    n = _as_float64(counts).ravel()
    total = float(n.sum())
    if total <= 0.0 or n.size == 0:
        return math.nan, math.nan
    edges = np.linspace(low, high, n.size + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(n)])
    quartiles = []
    for p in (0.25, 0.75):
        target = p * total
        index = int(np.searchsorted(cumulative, target, side="left"))
        index = min(max(index, 1), n.size)
        inside = n[index - 1]
        fraction = (target - cumulative[index - 1]) / inside if inside > 0 else 0.0
        quartiles.append(float(edges[index - 1] + fraction * (edges[index] - edges[index - 1])))
    return quartiles[0], quartiles[1]


def energy_ratio(singular_values: ArrayLike) -> float:
    """``σ₁ / Σσᵢ`` for the singular values of a matrix (any order).

    Example:
        >>> energy_ratio([3.0, 1.0])
        0.75
    """
    s = np.abs(_as_float64(singular_values).ravel())
    if s.size == 0 or np.isnan(s).any():
        return math.nan
    total = float(s.sum())
    return float(s.max()) / total if total > 0.0 else 0.0


def weight_energy_ratio(weight: torch.Tensor) -> float:
    """:func:`energy_ratio` of a 2-D weight (higher ranks flattened after dim 0). The SVD runs in float32
    (singular values to a relative ~1e-6, ample for a ratio compared with a threshold), the ratio in
    float64."""
    matrix = weight.detach().to("cpu", torch.float32)
    matrix = matrix.reshape(matrix.shape[0], -1) if matrix.ndim > 1 else matrix[None]
    if not torch.isfinite(matrix).all():
        return math.nan
    return energy_ratio(torch.linalg.svdvals(matrix))


def skewness(values: ArrayLike) -> float:
    """Pearson's moment coefficient of skewness ``m₃ / m₂^{3/2}`` of all values.

    Example:
        >>> round(skewness([0, 0, 0, 3]), 6)  # m2 = 27/16, m3 = 81/32
        1.154701
    """
    x = _as_float64(values).ravel()
    if x.size == 0:
        return math.nan
    d = x - x.mean()
    return skewness_from_sums(x.size, float(d.sum()), float((d**2).sum()), float((d**3).sum()))


def skewness_from_sums(count: float, s1: float, s2: float, s3: float) -> float:
    """Skewness from running sums of ``d = x − c``, ``d²``, ``d³`` for any fixed shift ``c``.

    A shift close to the mean keeps the sums well conditioned; the result does not depend on it.
    """
    if count <= 0:
        return math.nan
    mean = s1 / count
    m2 = s2 / count - mean**2
    m3 = s3 / count - 3.0 * mean * (s2 / count) + 2.0 * mean**3
    if math.isnan(m2) or math.isnan(m3):
        return math.nan
    return m3 / m2**1.5 if m2 > 0.0 else 0.0


def rel_l2_from_sums(error_sq: float, reference_sq: float) -> float:
    """``sqrt(Σ(test − ref)² / Σref²)`` from its two sums."""
    if math.isnan(error_sq) or math.isnan(reference_sq):
        return math.nan
    if reference_sq <= 0.0:
        return 0.0 if error_sq <= 0.0 else math.inf
    return math.sqrt(error_sq / reference_sq)


def cosine_from_sums(dot: float, a_sq: float, b_sq: float) -> float:
    """``Σab / sqrt(Σa² Σb²)`` from its three sums (clipped to [−1, 1])."""
    if any(math.isnan(v) for v in (dot, a_sq, b_sq)):
        return math.nan
    if a_sq <= 0.0 and b_sq <= 0.0:
        return 1.0
    if a_sq <= 0.0 or b_sq <= 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / math.sqrt(a_sq * b_sq)))


def kl_from_logits(reference: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(reference) ‖ softmax(test))`` in nats over the last axis, in float64.

    Args:
        reference: ``[..., vocab]`` logits of the float model.
        test: ``[..., vocab]`` logits of the model compared with it.
    """
    log_p = torch.log_softmax(reference.detach().double(), dim=-1)
    log_q = torch.log_softmax(test.detach().double(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)
