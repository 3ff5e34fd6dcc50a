"""Frozen results of the op-level drill-down (:mod:`precdiff.compare.op_localize`); JSON via ``to_dict``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from precdiff._json import json_float
from precdiff.compare.op_align import Fusion


@dataclass(frozen=True)
class OpStep:
    """One paired op output of the jump stage, in A's forward order."""

    op: str  # "<module call>/<aten overload>#k" on A
    tensor: str  # the output's tensor name on A (op plus an output suffix "[i]" if it has several)
    tensor_b: str  # the tensor it is paired with on B
    rel_l2: float
    received_rel_l2: float  # the largest error among its inputs (through unpaired ops, see op_localize)
    growth: float  # rel_l2 / max(received_rel_l2, noise_floor)
    noise_floor: float
    through_unmatched: bool  # an input came from ops that have no partner on B (graphs differ there)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "tensor": self.tensor,
            "tensor_b": self.tensor_b,
            "rel_l2": json_float(self.rel_l2),
            "received_rel_l2": json_float(self.received_rel_l2),
            "growth": json_float(self.growth),
            "noise_floor": self.noise_floor,
            "through_unmatched": self.through_unmatched,
        }


@dataclass(frozen=True)
class OpDrillDown:
    """How the two op graphs were paired and, for a divergence, the op where the error jumps."""

    paired: int  # op outputs paired
    a_only: tuple[str, ...]  # op outputs of A without a partner
    b_only: tuple[str, ...]
    fusions: tuple[Fusion, ...]  # every run of ops that differs between A and B
    jump: OpStep | None = None  # the verdict's op; None without a divergence or when no op jumps
    steps: tuple[OpStep, ...] = ()  # the jump stage's paired float ops, A's forward order
    stage_fusions: tuple[Fusion, ...] = ()  # the runs that differ inside the jump stage

    @property
    def op(self) -> str | None:
        return self.jump.op if self.jump is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "paired": self.paired,
            "a_only": list(self.a_only),
            "b_only": list(self.b_only),
            "fusions": [f.to_dict() for f in self.fusions],
            "stage_fusions": [f.to_dict() for f in self.stage_fusions],
            "steps": [s.to_dict() for s in self.steps],
        }
