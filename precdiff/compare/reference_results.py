"""Result objects of a three-way comparison (A and B against a reference R); see compare/reference.py.

``ReferenceComparison.to_dict()`` is the ``reference`` section of the compare JSON report
(``docs/compare-json.md``). Errors are relative L2 distances *from the reference*
(‖side − R‖ / ‖R‖); a side's ``ratio`` is its error divided by the error its dtype explains
(``expected``), so ``ratio ≤ 1`` is "within rounding" and ``ratio = 40`` is "40× more than rounding".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from precdiff._json import json_float

# ReferenceVerdict.status values.
REF_NEITHER = "neither_departs"  # both sides within their dtypes' expected error everywhere
REF_A = "a_departs"
REF_B = "b_departs"
REF_BOTH = "both_depart"
REF_NOTHING = "nothing_compared"  # no tensor could be compared with the reference


@dataclass(frozen=True)
class SideError:
    """One side's distance from the reference for one tensor (or the worst tensor of a module)."""

    rel_l2: float | None  # None: not comparable (shape differs, statistics only, missing in R)
    expected: float  # the rel-L2 this side's dtype explains against this reference
    tensor: str | None = None  # for module rows: the tensor the numbers come from

    @property
    def ratio(self) -> float | None:
        """``rel_l2 / expected``; NaN (a NaN/Inf mismatch) counts as infinitely far."""
        if self.rel_l2 is None:
            return None
        if self.rel_l2 != self.rel_l2:
            return float("inf")
        return self.rel_l2 / self.expected if self.expected > 0.0 else float("inf") if self.rel_l2 else 0.0

    @property
    def departs(self) -> bool:
        ratio = self.ratio
        return ratio is not None and ratio > 1.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rel_l2": json_float(self.rel_l2),
            "expected": self.expected,
            "ratio": json_float(self.ratio),
            "departs": self.departs,
        }
        if self.tensor is not None:
            out["tensor"] = self.tensor
        return out


@dataclass(frozen=True)
class ReferenceTensor:
    """A tensor aligned in A, B and R: both sides' errors from R."""

    name: str
    module: str
    role: str  # "output" | "input"; module rows and the verdict read outputs only
    layer: int | None
    op: str | None  # the tensor name for op-level tensors (``<module>/<aten op>#k``), else None
    a: SideError
    b: SideError

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "role": self.role,
            "layer": self.layer,
            "op": self.op,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
        }


@dataclass(frozen=True)
class ReferenceModule:
    """The worst output tensor of one module on each side (forward order of first appearance)."""

    module: str
    layer: int | None
    a: SideError
    b: SideError

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "layer": self.layer, "a": self.a.to_dict(), "b": self.b.to_dict()}


@dataclass(frozen=True)
class ReferenceVerdict:
    """Which side departs from the reference first, and by how many times its expected error."""

    status: str  # REF_NEITHER | REF_A | REF_B | REF_BOTH | REF_NOTHING
    message: str  # one line
    side: str | None  # "A" | "B" | "both" | None
    tensor: str | None = None  # the first departing tensor (of ``side``; of A when both)
    module: str | None = None
    layer: int | None = None
    op: str | None = None  # set when that tensor is an op-level tensor
    a: SideError | None = None  # both sides' errors at ``tensor``
    b: SideError | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "side": self.side,
            "tensor": self.tensor,
            "module": self.module,
            "layer": self.layer,
            "op": self.op,
            "a": self.a.to_dict() if self.a is not None else None,
            "b": self.b.to_dict() if self.b is not None else None,
        }


@dataclass(frozen=True)
class ReferenceComparison:
    """A and B each compared with the reference capture R, tensor by tensor."""

    path: str
    dtype: str | None  # R's run dtype, e.g. "float64"
    device: str | None
    dtype_a: str | None
    dtype_b: str | None
    verdict: ReferenceVerdict
    modules: tuple[ReferenceModule, ...]
    tensors: tuple[ReferenceTensor, ...]
    missing: tuple[str, ...]  # aligned A/B tensors that R lacks
    differences: tuple[Any, ...]  # manifest differences of R against A, then against B (Difference)

    def to_dict(self) -> dict[str, Any]:
        return {
            "capture": {"path": self.path, "dtype": self.dtype, "device": self.device},
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "verdict": self.verdict.to_dict(),
            "modules": [m.to_dict() for m in self.modules],
            "tensors": [t.to_dict() for t in self.tensors],
            "missing": list(self.missing),
            "differences": [d.to_dict() for d in self.differences],
        }
