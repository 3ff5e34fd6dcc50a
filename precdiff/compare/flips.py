"""Discrete flips: separating what a rounding-caused routing change did from a real fault.

In an MoE layer, rounding can make the router pick another expert for a few tokens (the integer
router indices differ). Those tokens' expert output is then replaced wholesale, which moves the
layer's rel-L2 far above the noise floor although nothing is wrong. A real fault (a bad expert
kernel) shows on the tokens whose routing agrees as well. So for every float tensor that follows a
differing integer tensor in the same decoder layer, and has a token axis, the rel-L2 is recomputed
over the tokens whose discrete choices agree (``rel_l2_unflipped``); :mod:`precdiff.compare.localize` uses it
as that tensor's error. Only tensors of one layer are read again, whole, one at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from precdiff.compare.metrics import rel_l2_of
from precdiff.compare.per_token import token_axis_of
from precdiff.compare.results import COMPARED, TensorComparison
from precdiff.store.reader import Capture


def flipped_tokens(
    a: np.ndarray, b: np.ndarray, num_tokens: int, axis: int | None = None
) -> np.ndarray | None:
    """Bool [tokens]: the tokens whose entries differ between two integer tensors (None: no token axis).

    ``axis``: the token axis when known (``token_axis_of`` of the tensor's info); else guessed from the shape.
    """
    axis = axis if axis is not None else token_axis_of(a, num_tokens)
    if axis is None:
        return None
    differs = np.moveaxis(a != b, axis, 0).reshape(num_tokens, -1)
    return np.asarray(differs.any(axis=1))


def discount_flips(
    cap_a: Capture, cap_b: Capture, tensors: Sequence[TensorComparison], num_tokens: int
) -> tuple[TensorComparison, ...]:
    """Add ``rel_l2_unflipped`` to the tensors that follow a differing integer tensor in their layer."""
    result = list(tensors)
    flipped: dict[int, np.ndarray] = {}  # layer -> tokens flipped so far in that layer
    for index, t in enumerate(result):
        if t.layer is None or t.status != COMPARED:
            continue
        if not t.is_float and not t.exact:
            rows = flipped_tokens(
                cap_a.tensor(t.name),
                cap_b.tensor(t.name),
                num_tokens,
                token_axis_of(cap_a.info(t.name), num_tokens),
            )
            if rows is not None and rows.any():
                flipped[t.layer] = flipped.get(t.layer, np.zeros(num_tokens, dtype=bool)) | rows
            continue
        rows = flipped.get(t.layer)
        axis = token_axis_of(cap_a.info(t.name), num_tokens)
        if rows is None or axis is None or not t.is_float or t.exact or rows.all():
            continue
        keep = ~rows
        a = np.compress(keep, cap_a.tensor(t.name).astype(np.float64), axis=axis)
        b = np.compress(keep, cap_b.tensor(t.name).astype(np.float64), axis=axis)
        result[index] = dataclasses.replace(
            t, rel_l2_unflipped=rel_l2_of(a, b), tokens_flipped=int(rows.sum())
        )
    return tuple(result)
