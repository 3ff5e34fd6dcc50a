"""The noise model: how much error two runs may differ by before a module's error is a signal.

Two questions, answered from what is known about the runs rather than from the dtype alone:

1. **Could the runs differ at all?** When both manifests exist and agree on everything that decides
   the arithmetic — device (type, name, capability, threads), dtype, library versions, attention
   implementation, determinism switches, kernels and kernel settings — the same kernels ran on the
   same operands in the same order, so the expected difference is exactly zero
   (:func:`numerics_identical`). ``compare`` then sets every tensor's noise floor to 0: the first
   tensor that differs at all is where the error starts (growth from exact zero is infinite), however
   small it is. A nondeterministic kernel (e.g. atomics) would also show up there; that is a finding too.
2. **Otherwise, how fast does noise grow in this run?** The dtype pair gives the floor of
   :mod:`precdiff.compare.tolerances` (``0.5·√u``), but rounding noise does not start at that floor:
   it starts at a few ulps and grows layer by layer. A module's error is compared with what it
   *received* times how much that kind of module typically amplifies error in this very run:
   ``growth = error / max(received · typical, floor_after(received))`` where

   - ``typical`` is the median, over the *other* stages (layers), of the same tensor's plain ratio
     ``error / max(received, floor_after(received))`` — a residual-stream tensor typically ×1.0–1.4, an
     MLP output a few times its input's error in bf16; never below 1. The median over other layers
     is what "noise grows like this here" means; the stage under test is left out so a fault cannot
     raise its own bar. With fewer than :data:`MIN_TYPICAL_STAGES` other stages it is 1.
   - ``floor_after(received)`` is the dtype floor while nothing has been received (the first error of
     a cross-device pair: only the dtype says how large it may be), and :data:`JUMP_FLOOR_SHARE` of
     it once an error has been observed upstream (the observed error now sets the scale; the
     remaining share only keeps ulp-level noise on a tiny received error from counting).

   A stage is a jump when this growth is at least ``MIN_JUMP_GROWTH`` — even when its error is below
   the dtype floor: a bf16 ``down_proj`` at 1e-2 that received 2e-3 is a jump. Smooth accumulation
   (each layer ×1.15 of the last, every layer alike) normalises to ×1 and stays ``accumulated``.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence

from precdiff.compare.results import Difference

# Manifest fields that decide the arithmetic; a difference under any of them means the runs may differ.
NUMERICS_FIELDS: tuple[str, ...] = (
    "device",
    "dtype",
    "versions",
    "attn_implementation",
    "determinism",
    "kernels",
    "kernel_settings",
)

# Once an error has been observed upstream, the floor in a growth denominator shrinks to this share of
# the dtype floor: bf16 3.9e-3 (= u, about what one op's fresh rounding adds), fp32 1.5e-5 (above most
# of the 1e-6..1e-5 of reduction-order differences between devices, and a jump needs twice it).
JUMP_FLOOR_SHARE = 0.125

# ``typical`` needs this many other stages with an observed received error; fewer and it is 1.
MIN_TYPICAL_STAGES = 2


def numerics_identical(differences: Sequence[Difference], both_have_manifests: bool) -> bool:
    """Whether nothing that decides the arithmetic differs between the runs (expected difference 0)."""
    if not both_have_manifests:
        return False
    return not any(
        d.field == prefix or d.field.startswith(prefix + ".")
        for d in differences
        for prefix in NUMERICS_FIELDS
    )


def floor_after(received: float, floor: float) -> float:
    """The floor of a growth denominator: the dtype floor from zero, a share of it after an observed error."""
    return floor if received <= 0.0 else floor * JUMP_FLOOR_SHARE


def raw_growth(error: float, received: float, floor: float) -> float:
    """``error / max(received, floor_after(received))``: inf when an error rises from exact zero."""
    denominator = max(received, floor_after(received, floor))
    if denominator > 0.0:
        return error / denominator
    return 1.0 if error == 0.0 else float("inf")


def canonical(name: str, layer: int | None) -> str:
    """The name with its layer index replaced by ``#``: the same tensor in every layer."""
    if layer is None:
        return name
    return re.sub(rf"\.{layer}(?=$|[.\[:#])", ".#", name, count=1)


def typical_growths(ratios: Mapping[str, tuple[str, int, float, float]]) -> dict[str, float]:
    """Key -> median plain ratio of the same kind in the other stages (at least 1).

    ``ratios`` maps a key (a tensor name) to (kind, stage index, received error, plain ratio); the kind
    is :func:`canonical` of the name. Ratios with nothing received (from exact zero or the dtype floor)
    say nothing about growth and are left out.
    """
    by_kind: dict[str, list[tuple[int, float]]] = {}
    for kind, stage, received, ratio in ratios.values():
        if received > 0.0 and math.isfinite(ratio):
            by_kind.setdefault(kind, []).append((stage, ratio))
    result = {}
    for key, (kind, stage, _, _) in ratios.items():
        others = [r for s, r in by_kind.get(kind, []) if s != stage]
        result[key] = max(1.0, statistics.median(others)) if len(others) >= MIN_TYPICAL_STAGES else 1.0
    return result


def normalized_growth(error: float, received: float, floor: float, typical: float) -> float:
    """``error / max(received · typical, floor_after(received))``."""
    denominator = max(received * typical, floor_after(received, floor))
    if denominator > 0.0:
        return error / denominator
    return 1.0 if error == 0.0 else float("inf")
