"""Flagging by thresholds (with reasons) and by --budget's combined rank, on hand-made measures."""

from __future__ import annotations

import math

import pytest

from precdiff.sensitivity.rank import combined_ranks, flag
from precdiff.sensitivity.results import LayerSensitivity

THRESHOLDS = {"kl": 0.02, "R": 15.0, "energy": 0.42}


def layer(name: str, kl: float, r: float, energy: float) -> LayerSensitivity:
    nan = math.nan
    return LayerSensitivity(
        name, 0, name, "linear", (4, 4), kl, kl, r, nan, energy, nan, nan, nan, nan, False, ()
    )


LAYERS = [
    layer("a", 0.001, 5.0, 0.05),
    layer("b", 0.030, 5.0, 0.05),  # KL only
    layer("c", 0.001, 20.0, 0.50),  # R and energy
    layer("d", math.nan, 6.0, 0.06),  # a NaN KL never flags by itself
]


def test_thresholds_flag_with_reasons() -> None:
    result = {x.name: x for x in flag(LAYERS, THRESHOLDS, None)}
    assert [n for n, x in result.items() if x.flagged] == ["b", "c"]
    assert result["b"].reasons == ("kl",) and result["c"].reasons == ("R", "energy")
    assert result["a"].reasons == () and not result["d"].flagged


def test_combined_rank_is_the_mean_of_three_descending_ranks() -> None:
    # KL ranks: b 1, a/c tie 2.5, d (NaN) 4; R ranks: c 1, d 2, a/b 3.5; energy ranks: c 1, d 2, a/b 3.5.
    assert combined_ranks(LAYERS) == pytest.approx(
        [(2.5 + 3.5 + 3.5) / 3, (1 + 3.5 + 3.5) / 3, (2.5 + 1 + 1) / 3, (4 + 2 + 2) / 3]
    )
    assert combined_ranks([]) == []


@pytest.mark.parametrize(
    ("budget", "expected"), [(0.25, ["c"]), (0.5, ["b", "c"]), (0.01, ["c"]), (1.0, ["a", "b", "c", "d"])]
)
def test_budget_flags_the_best_combined_ranks(budget: float, expected: list[str]) -> None:
    # Combined ranks: c 1.5, b 2.67, d 2.67, a 3.17; b and d tie and b wins on its larger KL.
    result = flag(LAYERS, THRESHOLDS, budget)
    assert [x.name for x in result if x.flagged] == expected
    assert all(x.reasons == ("budget",) for x in result if x.flagged)
