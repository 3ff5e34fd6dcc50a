"""The verdict of a replay, shared by module calls and aten ops: who departs from float64, and why.

``expected = max(u, baseline error)`` with ``u`` the captured dtype's unit roundoff and the baseline the
same call replayed on the CPU in the captured dtype (what a correct implementation of that dtype gives);
the captured output's distance from the float64 replay divided by it is the ratio judged against
:data:`DEPARTURE_RATIO`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precdiff.compare.metrics import accumulate, rel_l2
from precdiff.compare.tolerances import less_precise
from precdiff.replay.results import AS_EXPECTED, COMPUTES_DIFFERENTLY

# A correctly rounded call in isolation lands within a few unit roundoffs of the exact result (and
# within the CPU baseline's error, which covers multi-step modules such as an MLP); 4× that leaves room
# for kernels that accumulate in another order without calling them wrong.
DEPARTURE_RATIO = 4.0


@dataclass(frozen=True)
class Verdict:
    """The numbers and the one-line verdict of :class:`~precdiff.replay.results.ReplayResult`."""

    captured_vs_reference: float
    here_vs_reference: float
    captured_vs_here: float
    reproduced_bitwise: bool
    expected: float
    ratio: float
    status: str
    message: str


@dataclass(frozen=True)
class Where:
    """What was replayed where: the call's name, dtype codes and the replay's device and dtypes."""

    call: str  # "model.layers.3.mlp" or "model.layers.3.mlp/aten.mm.default#0"
    codes: tuple[str, ...]  # the output's dtype code and the run's
    captured_dtype: str  # "bfloat16"
    device: str
    here_dtype: str
    same_dtype: bool


def error(reference: np.ndarray, candidate: np.ndarray) -> float:
    return rel_l2(accumulate(reference, candidate))


def judge(
    where: Where,
    reference: np.ndarray,
    here: np.ndarray,
    captured: np.ndarray,
    baseline: np.ndarray | None,
) -> Verdict:
    """Errors of the captured output and of this machine's replay against the float64 replay (all
    float64 arrays of the output's shape); ``baseline`` is ``None`` when *here* is the baseline."""
    here_error = error(reference, here)
    baseline_error = here_error if baseline is None else error(reference, baseline)
    expected = max(less_precise(*where.codes).unit_roundoff, baseline_error)
    captured_error = error(reference, captured)
    ratio = captured_error / expected if expected > 0 else float("inf")
    pair = accumulate(captured, here)
    return Verdict(
        captured_vs_reference=captured_error,
        here_vs_reference=here_error,
        captured_vs_here=rel_l2(pair),
        reproduced_bitwise=where.same_dtype and pair.exact,
        expected=expected,
        ratio=ratio,
        status=COMPUTES_DIFFERENTLY if not ratio <= DEPARTURE_RATIO else AS_EXPECTED,
        message=_message(where, captured_error, here_error, expected, ratio),
    )


def _message(where: Where, captured: float, here: float, expected: float, ratio: float) -> str:
    here_ratio = here / expected if expected > 0 else float("inf")
    dtype = where.captured_dtype
    if not ratio <= DEPARTURE_RATIO:
        reproduced = (
            f"replayed here ({where.device}, {where.here_dtype}) it is {here_ratio:.3g}× too: this device "
            "computes it differently"
            if not here_ratio <= DEPARTURE_RATIO
            else f"replayed here ({where.device}, {where.here_dtype}) it is within {here_ratio:.2g}×: only the "
            "captured run computes it differently"
        )
        return (
            f"{where.call} computes differently in the captured run: from its own captured inputs its output is "
            f"{captured:.2e} from the float64 replay, {ratio:.3g}× what {dtype} rounding explains ({expected:.2e}); "
            f"the op itself is at fault, not its inputs; {reproduced}"
        )
    return (
        f"{where.call} computes what {dtype} rounding explains from the inputs it received (captured output "
        f"{captured:.2e} from the float64 replay, {ratio:.2g}× expected); a divergence in its output came in "
        "through its inputs"
    )
