"""Drill-down below the module: the op inside the jump layer where the error jumps.

Runs after :func:`precdiff.compare.localize.localize` has named a layer (and a module) and only when
both captures hold op outputs (``capture --level op``). The ops of the two sides are paired by
:func:`~precdiff.compare.op_align.align_ops`. Every paired float op output ``o`` in the jump stage (the
decoder layer, or outside the layers the verdict's module) gets

    growth(o) = rel_l2(o) / max(received(o), floor(o))

where ``received(o)`` is the largest error among *its own inputs*, found through A's input references
(docs/format.md): a paired producer contributes its rel-L2, a parameter, buffer or constant nothing, and
an unpaired producer (an op that has no partner because the graphs differ there) what *it* received, so
a run of ops fused on one side is measured as a whole, from the errors entering it to the first paired
op after it. That is exact where the graphs agree and the fusion boundary where they do not; the report
lists the differing runs of the layer. The op with the largest growth (earliest on ties) is the
verdict's ``op`` when its growth reaches :data:`~precdiff.compare.localize.MIN_JUMP_GROWTH`, else
``None``: the error then rises gradually through the layer and no single op is to blame.

Errors are rel-L2 over the stored values; for ``--summary`` captures the sketch estimate stands in,
or without sketches the norm-ratio lower bound, as at module level
(:mod:`precdiff.compare.summary_pairs`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from precdiff.compare.formatting import fmt_growth, fmt_rel
from precdiff.compare.localize import MIN_JUMP_GROWTH
from precdiff.compare.metrics import PairSums, Tolerance, accumulate, merge, rel_l2
from precdiff.compare.op_align import OpAlignment, align_ops, op_infos, op_name
from precdiff.compare.op_results import OpDrillDown, OpStep
from precdiff.compare.results import STATUS_DIVERGED, Verdict
from precdiff.compare.summary_pairs import summary_rel_l2
from precdiff.compare.tolerances import noise_floor
from precdiff.store.dtypes import FLOAT_CODES
from precdiff.store.format import layer_index
from precdiff.store.reader import Capture, TensorInfo


def _pair_error(cap_a: Capture, cap_b: Capture, a: TensorInfo, b: TensorInfo, block_elements: int) -> float:
    if not (a.stored and b.stored):
        return summary_rel_l2(cap_a, cap_b, a, b)
    sums = PairSums()
    tolerance = Tolerance(0.0, 0.0)
    blocks_b = cap_b.iter_blocks(b.name, block_elements)
    for block_a in cap_a.iter_blocks(a.name, block_elements):
        sums = merge(sums, accumulate(block_a, next(blocks_b), tolerance))  # same shape, same cuts
    return rel_l2(sums)


class _Errors:
    """Lazily computed rel-L2 of paired ops and the error each op received through its inputs."""

    def __init__(
        self,
        cap_a: Capture,
        cap_b: Capture,
        alignment: OpAlignment,
        block_elements: int,
        run_codes: tuple[str, ...],
    ) -> None:
        self.cap_a, self.cap_b = cap_a, cap_b
        self.partners = alignment.partners()
        self.infos = {i.name: i for i in op_infos(cap_a)}
        self.block_elements = block_elements
        self.run_codes = run_codes
        self._errors: dict[str, float] = {}
        self._received: dict[str, float] = {}

    def error(self, name: str) -> float:
        if name not in self._errors:
            value = _pair_error(
                self.cap_a, self.cap_b, self.infos[name], self.partners[name], self.block_elements
            )
            self._errors[name] = value if value == value else math.inf  # NaN: diverged beyond measure
        return self._errors[name]

    def floor(self, name: str, override: float | None) -> float:
        if override is not None:
            return override
        return noise_floor(self.infos[name].dtype, self.partners[name].dtype, *self.run_codes)

    def source(self, ref: str) -> float:
        """The error a consumer receives from one input reference."""
        if ref not in self.infos:  # parameter, buffer, constant, or a producer that was not kept
            return 0.0
        if ref in self.partners:
            return self.error(ref)
        return self.received(ref)  # unpaired: the graphs differ here; look through it

    def received(self, name: str) -> float:
        if name not in self._received:
            self._received[name] = 0.0  # guards against a reference cycle (in-place ops)
            refs = self.infos[name].inputs or ()
            self._received[name] = max((self.source(ref) for ref in refs), default=0.0)
        return self._received[name]

    def through_unpaired(self, name: str) -> bool:
        return any(ref in self.infos and ref not in self.partners for ref in self.infos[name].inputs or ())


def _in_stage(verdict: Verdict, layers_path: str | None) -> Callable[[str], bool]:
    """Whether an op's module call belongs to the verdict's layer (or, outside the layers, module)."""
    if verdict.layer is not None:
        layer = verdict.layer
        return lambda scope: layer_index(scope, layers_path) == layer
    module = verdict.module or ""
    return lambda scope: scope == module or scope.startswith((module + ".", module + "#"))


def drill_down(
    cap_a: Capture,
    cap_b: Capture,
    verdict: Verdict,
    *,
    layers_path: str | None,
    run_codes: tuple[str, ...],
    block_elements: int,
    noise_floor_override: float | None = None,
) -> OpDrillDown | None:
    """The op-level error chain of the jump stage; ``None`` unless both captures are op level.

    The alignment is always reported; the chain and the op only when ``verdict`` is a divergence
    with a layer or module (a jump, a drift, or non-finite values).
    """
    if not op_infos(cap_a) or not op_infos(cap_b):
        return None
    alignment = align_ops(cap_a, cap_b)
    if verdict.status != STATUS_DIVERGED or (verdict.layer is None and verdict.module is None):
        return OpDrillDown(
            paired=len(alignment.pairs),
            a_only=alignment.a_only,
            b_only=alignment.b_only,
            fusions=alignment.fusions,
        )
    errors = _Errors(cap_a, cap_b, alignment, block_elements, run_codes)
    in_stage = _in_stage(verdict, layers_path)
    steps: list[OpStep] = []
    for a, b in alignment.pairs:
        if not in_stage(a.module) or a.dtype not in FLOAT_CODES or b.dtype not in FLOAT_CODES:
            continue
        error, received = errors.error(a.name), errors.received(a.name)
        floor = errors.floor(a.name, noise_floor_override)
        denominator = max(received, floor)
        growth = error / denominator if denominator > 0 else (1.0 if error == 0 else math.inf)
        steps.append(
            OpStep(
                op=op_name(a.name),
                tensor=a.name,
                tensor_b=b.name,
                rel_l2=error,
                received_rel_l2=received,
                growth=growth,
                noise_floor=floor,
                through_unmatched=errors.through_unpaired(a.name),
            )
        )
    above = [s for s in steps if s.rel_l2 > s.noise_floor]
    jump = max(above, key=lambda s: s.growth, default=None)  # max keeps the first of equal values
    if jump is not None and not jump.growth >= MIN_JUMP_GROWTH:
        jump = None
    return OpDrillDown(
        paired=len(alignment.pairs),
        a_only=alignment.a_only,
        b_only=alignment.b_only,
        fusions=alignment.fusions,
        jump=jump,
        steps=tuple(steps),
        stage_fusions=tuple(f for f in alignment.fusions if in_stage(f.scope)),
    )


def with_op(verdict: Verdict, drill: OpDrillDown | None) -> Verdict:
    """The verdict with ``op`` set and the op named in its message, when the drill-down found one."""
    if drill is None or drill.jump is None:
        return verdict
    jump = drill.jump
    note = " (its input passed through ops that differ between A and B)" if jump.through_unmatched else ""
    message = (
        f"{verdict.message}; op {jump.op}: rel-L2 {fmt_rel(jump.received_rel_l2)} → "
        f"{fmt_rel(jump.rel_l2)} ({fmt_growth(jump.growth)}){note}"
    )
    return dataclasses.replace(verdict, op=jump.op, message=message)
