"""From collected statistics to per-layer measures, and which layers are flagged.

Two modes (``docs/sensitivity.md``):

- thresholds (default): a layer is flagged when ``KL > kl_threshold`` or ``R > r_threshold`` (R of the
  weight) or ``energy > energy_threshold``; ``reasons`` names each exceeded measure.
- budget: the ``round(budget · n)`` layers (at least one) with the best *combined rank* are flagged. Each
  of KL, weight R and energy ranks the layers from most to least sensitive (rank 1 = largest value; ties
  share their mean rank; NaN ranks last); the combined rank is the mean of the three ranks. Ties in the
  combined rank go to the larger KL, then to forward order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from precdiff.sensitivity import measures
from precdiff.sensitivity.collect import LayerStats
from precdiff.sensitivity.results import LayerSensitivity
from precdiff.sensitivity.targets import Target


def weight_measures(targets: Sequence[Target]) -> dict[str, tuple[float, float]]:
    """``(R, energy)`` of each target's float weight, computed once per distinct tensor."""
    by_tensor: dict[int, tuple[float, float]] = {}
    result = {}
    for target in targets:
        key = id(target.weight)
        if key not in by_tensor:
            weight = target.weight.detach()
            by_tensor[key] = (measures.dispersion(weight), measures.weight_energy_ratio(weight))
        result[target.name] = by_tensor[key]
    return result


def layer_measures(
    target: Target, stats: LayerStats, weight: tuple[float, float], smoothing: float
) -> LayerSensitivity:
    """Every measure of one target from its pass-2 statistics (not yet ranked or flagged)."""
    kl = measures.kl_rows(stats.float_hist, stats.quant_hist, smoothing)
    q1, q3 = measures.histogram_quartiles(stats.pooled_hist, stats.pooled_low, stats.pooled_high)
    return LayerSensitivity(
        name=target.name,
        layer=target.layer,
        op=target.op,
        kind=target.kind,
        shape=tuple(target.weight.shape),
        kl=float(kl.mean()) if kl.size else math.nan,
        kl_max=float(kl.max()) if kl.size else math.nan,
        weight_r=weight[0],
        act_r=measures.dispersion_from_quartiles(stats.pooled_low, stats.pooled_high, q1, q3),
        energy=weight[1],
        skewness=measures.skewness_from_sums(stats.count, stats.sum("s1"), stats.sum("s2"), stats.sum("s3")),
        rel_l2=measures.rel_l2_from_sums(stats.sum("error_sq"), stats.sum("float_sq")),
        cosine=measures.cosine_from_sums(stats.sum("dot"), stats.sum("float_sq"), stats.sum("quant_sq")),
        combined_rank=math.nan,
        flagged=False,
        reasons=(),
    )


def _descending_ranks(values: Sequence[float]) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """Rank 1 for the largest value, mean ranks for ties, NaN last."""
    from scipy.stats import rankdata  # scipy is imported only when layers are ranked

    array = np.asarray(values, dtype=np.float64)
    keyed = np.where(np.isnan(array), -np.inf, array)
    ranks: np.ndarray[tuple[int], np.dtype[np.float64]] = rankdata(-keyed, method="average")
    return ranks


def combined_ranks(layers: Sequence[LayerSensitivity]) -> list[float]:
    """The mean of each layer's KL, weight-R and energy ranks (1 = most sensitive)."""
    if not layers:
        return []
    columns = [
        _descending_ranks([x.kl for x in layers]),
        _descending_ranks([x.weight_r for x in layers]),
        _descending_ranks([x.energy for x in layers]),
    ]
    return [float(v) for v in np.mean(columns, axis=0)]


def flag(
    layers: Sequence[LayerSensitivity], thresholds: dict[str, float], budget: float | None
) -> tuple[LayerSensitivity, ...]:
    """The layers with ``combined_rank``, ``flagged`` and ``reasons`` filled in, in the same order."""
    ranks = combined_ranks(layers)
    ranked = [replace(layer, combined_rank=rank) for layer, rank in zip(layers, ranks)]
    if budget is not None:
        count = max(1, math.floor(budget * len(ranked) + 0.5)) if ranked else 0
        order = sorted(
            range(len(ranked)),
            key=lambda i: (ranked[i].combined_rank, -_or_low(ranked[i].kl), i),
        )
        chosen = set(order[:count])
        return tuple(
            replace(layer, flagged=i in chosen, reasons=("budget",) if i in chosen else ())
            for i, layer in enumerate(ranked)
        )
    flagged = []
    for layer in ranked:
        reasons = tuple(
            name
            for name, value in (("kl", layer.kl), ("R", layer.weight_r), ("energy", layer.energy))
            if value > thresholds[name]  # NaN compares False: a NaN measure never flags on its own
        )
        flagged.append(replace(layer, flagged=bool(reasons), reasons=reasons))
    return tuple(flagged)


def _or_low(value: float) -> float:
    return -math.inf if math.isnan(value) else value
