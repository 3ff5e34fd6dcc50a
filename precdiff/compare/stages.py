"""Stages of the forward pass: grouping the tensor comparisons that localization judges.

Everything before the first decoder layer (index -1), each decoder layer, everything after the last
(index N); a discrete flip (differing integer tensor) inside a stage. See :mod:`precdiff.compare.localize`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from precdiff.compare.results import COMPARED, SHAPE_MISMATCH, TensorComparison

# A rounding-level routing flip of a share f of the router's top-k entries reroutes a share k·f of the
# tokens; a rerouted token's expert output is replaced by an uncorrelated one (error ≈ √2 × its norm),
# so the layer's MoE output moves by ≈ √(2k·f) rel-L2 (k = 2: 2·√f), more when the rerouted token has
# an above-average norm. Measured: one flip in 168 entries (84 tokens) gave 0.164 = 2.1·√f. Errors up to
# FLIP_SCALE·√f are explained by the flip. This bound is the fallback for tensors without a token axis:
# where one exists, compare() recomputes the error over the unflipped tokens instead.
FLIP_SCALE = 2.0


@dataclass(frozen=True)
class Stage:
    index: int
    tensors: tuple[TensorComparison, ...]  # candidates, forward order
    flip: TensorComparison | None  # an integer tensor that differs while everything before is noise
    flip_floor: float = 0.0  # error a flip of this size can explain: FLIP_SCALE * sqrt(share flipped)


def err(t: TensorComparison) -> float:
    """A tensor's error for localization: flips discounted (see precdiff.compare.flips)."""
    error = t.effective_rel_l2
    return error if error is not None else 0.0


def raw_err(t: TensorComparison) -> float:
    """The error that actually flowed on to the next stage, flips included."""
    error = t.flowing_rel_l2
    return error if error is not None else 0.0


# Stage index of every tensor when the comparison holds no decoder-layer tensor at all (e.g. a capture
# made with --include lm_head): "before" or "after" the layers would be a guess.
OUTSIDE_LAYERS = -2


def stage_label(index: int, last: int) -> str:
    if index == OUTSIDE_LAYERS:
        return "outside the decoder layers"
    if index < 0:
        return "embeddings"
    return "head" if index >= last else f"layer {index}"


def where_label(index: int, last: int) -> str:
    if index == OUTSIDE_LAYERS:
        return "outside the decoder layers"
    if index < 0:
        return "before the first layer"
    return "after the last layer" if index >= last else f"at layer {index}"


def candidate_tensors(tensors: Sequence[TensorComparison]) -> list[TensorComparison]:
    usable = [t for t in tensors if t.status != SHAPE_MISMATCH and t.is_float and t.rel_l2 is not None]
    aligned = [t for t in usable if t.token_aligned]
    return aligned or usable


def group_stages(
    tensors: Sequence[TensorComparison], candidates: Sequence[TensorComparison], num_layers: int | None
) -> tuple[list[Stage], int]:
    """Group candidates by stage; returns the stages and the index used for "after the layers"."""
    layer_positions = [i for i, t in enumerate(tensors) if t.layer is not None]
    first_layer_pos = layer_positions[0] if layer_positions else len(tensors)
    max_layer = max((t.layer for t in tensors if t.layer is not None), default=-1)
    last = max(num_layers or 0, max_layer + 1)
    position = {t.name: i for i, t in enumerate(tensors)}

    def stage_of(t: TensorComparison) -> int:
        if t.layer is not None:
            return t.layer
        if not layer_positions:
            return OUTSIDE_LAYERS
        return -1 if position[t.name] < first_layer_pos else last

    groups: dict[int, list[TensorComparison]] = {}
    for t in candidates:
        groups.setdefault(stage_of(t), []).append(t)
    stages = []
    for index in sorted(groups):
        flips = [
            t
            for t in tensors
            if not t.is_float and t.status == COMPARED and not t.exact and stage_of(t) == index
        ]
        flip, flip_floor = None, 0.0
        if flips:
            before = [t for t in groups[index] if position[t.name] < position[flips[0].name]]
            if not any(t.above_floor for t in before):
                flip = flips[0]
                flip_floor = FLIP_SCALE * math.sqrt(flip.n_unequal / max(1, flip.numel))
        stages.append(Stage(index, tuple(groups[index]), flip, flip_floor))
    return stages, last


def stage_output(stage: Stage) -> TensorComparison:
    outputs = [t for t in stage.tensors if t.layer_output]
    if outputs:
        return outputs[0]
    if stage.index < 0:  # everything before the layers feeds layer 0 (embeddings, rotary tables)
        return max(stage.tensors, key=err)
    return stage.tensors[-1]
