"""Per-dtype numbers in one table: unit roundoff, element tolerance and the noise floor.

Everything that depends on "how precise is this dtype" is read from :data:`DTYPES`, keyed by the
format's dtype codes (``"BF16"``, ``"F32"``, …). A pair of captures is judged by its *less precise*
dtype: bf16 against fp32 can never agree better than bf16 allows.

Element tolerance (``frac_beyond`` metric): an element is beyond tolerance when
``|b - a| > atol + rtol * |a|``, with the same choice of dtypes as the floor below. ``rtol`` is the dtype's machine epsilon (``2u``) for the 16-bit
formats, i.e. one ulp of relative disagreement is allowed; fp32 and fp64 get a looser ``rtol`` than
one ulp because two devices that both compute in fp32 still round reductions in different orders.

Noise floor (localization): the relative L2 error below which a tensor's difference is treated as
rounding noise, ``floor = NOISE_FLOOR_SCALE * sqrt(u)`` with ``u`` the unit roundoff of the less
precise dtype. The dtypes that count are both tensors' dtypes *and* both captures' compute dtypes
(manifest ``dtype``): a tensor stored in fp32 by a bf16 run (upcast logits, an fp32 router softmax)
was computed from bf16 activations and carries bf16 error. This gives bf16 3.1e-02, fp16 1.1e-02, fp32 1.2e-04, fp64 5.3e-09. Why a square
root rather than ``c * u``: bf16 runs round *every stored activation* (error a few ``u``), while two
fp32 runs on different hardware differ mainly by reduction order inside long dot products, which
grows the error to ~``u * sqrt(K)`` and more through normalisation layers; one constant ``c`` cannot
cover both (it would need ~8 for bf16 and ~1000 for fp32). ``sqrt(u)`` matches both regimes:
bf16-vs-fp32 captures of random-init tiny models stay below it in every layer (checked by
``tests/compare/test_accumulation.py`` and ``tests/integration/test_planted_faults.py``), and fp32 CPU-vs-GPU reduction-order differences
(~1e-6..1e-5) stay two orders of magnitude below it, while TF32 matmuls (u = 2^-11) cross it.
Override it with ``--noise-floor`` / ``CompareOptions(noise_floor=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class DtypeTolerance:
    """Precision facts of one dtype code."""

    code: str
    rank: int  # lower = less precise; the pair is judged by the lower rank
    unit_roundoff: float  # u = 2^-p for p significand bits (0 for exact integer types)
    rtol: float
    atol: float


# Integers and booleans are exact: any difference is beyond tolerance and above the floor.
DTYPES: Final[dict[str, DtypeTolerance]] = {
    "BF16": DtypeTolerance("BF16", 0, 2.0**-8, rtol=2.0**-7, atol=1e-5),
    "F16": DtypeTolerance("F16", 1, 2.0**-11, rtol=2.0**-10, atol=1e-5),
    "F32": DtypeTolerance("F32", 2, 2.0**-24, rtol=1e-5, atol=1e-8),
    "F64": DtypeTolerance("F64", 3, 2.0**-53, rtol=1e-12, atol=1e-15),
    **{
        code: DtypeTolerance(code, 4, 0.0, rtol=0.0, atol=0.0)
        for code in ("I64", "I32", "I16", "I8", "U8", "BOOL")
    },
}

NOISE_FLOOR_SCALE: Final = 0.5

# Manifest dtype names (``"bfloat16"``) -> codes, for judging logprobs of a whole capture.
MANIFEST_DTYPE_CODES: Final[dict[str, str]] = {
    "bfloat16": "BF16",
    "float16": "F16",
    "float32": "F32",
    "float64": "F64",
}


def _lookup(code: str) -> DtypeTolerance:
    # Unknown codes are treated as fp32 rather than refused: the reader already rejects codes the
    # format does not define, so this only guards against a newer format adding one.
    return DTYPES.get(code, DTYPES["F32"])


def less_precise(*codes: str) -> DtypeTolerance:
    """The dtype that bounds the agreement of a pair (``("F32", "BF16")`` -> BF16).

    Floats paired with integer types are judged by the floats; only integers -> exact.
    """
    table = [_lookup(code) for code in codes]
    floats = [t for t in table if t.unit_roundoff > 0.0]
    if not floats:
        return table[0] if table else DTYPES["I64"]
    return min(floats, key=lambda t: t.rank)


def pair_tolerance(*codes: str) -> tuple[float, float]:
    """``(rtol, atol)`` for the ``frac_beyond`` metric, judged by the least precise of ``codes``."""
    t = less_precise(*codes)
    return t.rtol, t.atol


def noise_floor(*codes: str) -> float:
    """Relative-L2 noise floor: ``NOISE_FLOOR_SCALE * sqrt(u)`` of the least precise of ``codes``."""
    return NOISE_FLOOR_SCALE * math.sqrt(less_precise(*codes).unit_roundoff)


def manifest_dtype_code(name: str | None) -> str:
    """The dtype code of a manifest's ``dtype`` entry (``"bfloat16"`` -> ``"BF16"``; unknown -> F32)."""
    return MANIFEST_DTYPE_CODES.get(name or "", "F32")


# A greedy flip is a near-tie when both sides' top-1/top-2 margins are below this many nats:
# max(NEAR_TIE_MIN_NATS, NEAR_TIE_ULPS * u). Logits of a bf16 run carry errors of a few u
# (u = 2^-8), so margins below ~16u = 0.06 nats can flip by rounding alone; fp16/fp32 runs are
# bounded below by 0.01 nats.
NEAR_TIE_MIN_NATS: Final = 0.01
NEAR_TIE_ULPS: Final = 16.0


def near_tie_nats(*codes: str) -> float:
    """The margin (nats) under which a differing greedy token counts as a near-tie, when the top logit is
    unknown (captures written before ``generation/top_logit``)."""
    return max(NEAR_TIE_MIN_NATS, NEAR_TIE_ULPS * less_precise(*codes).unit_roundoff)


# With the top logit known, a near-tie is a margin of at most this many ulps of that logit in the run's
# dtype: rounding the two logits to the dtype alone moves a margin by up to 1 ulp on each side (2 ulps
# between the sides), and the logits' own error from upstream rounding is a few ulps more. bf16 at
# logit 20: ulp 0.125, threshold 0.5 nats; fp32: ~1e-5, so the 0.01-nat minimum applies.
NEAR_TIE_LOGIT_ULPS: Final = 4.0


def logit_ulp(value: float, *codes: str) -> float:
    """One ulp of ``value`` in the least precise of ``codes`` (bf16: 0.125 for values in [16, 32))."""
    u = less_precise(*codes).unit_roundoff
    if u == 0.0 or not math.isfinite(value):
        return 0.0
    magnitude = max(abs(value), 2.0**-14)  # below the smallest fp16 normal, the ulp stops shrinking
    return 2.0 ** math.floor(math.log2(magnitude)) * 2.0 * u


def near_tie_nats_at(top_logit: float, *codes: str) -> float:
    """``max(NEAR_TIE_MIN_NATS, NEAR_TIE_LOGIT_ULPS · ulp(top logit))`` in the least precise of ``codes``."""
    return max(NEAR_TIE_MIN_NATS, NEAR_TIE_LOGIT_ULPS * logit_ulp(top_logit, *codes))
