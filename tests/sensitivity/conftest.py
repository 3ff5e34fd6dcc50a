"""Shared helpers of the sensitivity tests: the calibration sample and planted outlier channels."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CALIB = Path(__file__).parents[2] / "data" / "calibration" / "pride_and_prejudice.txt"
OUTLIER_SCALE = 64.0  # a power of two: scaling by it and by its inverse is exact in float


def plant_outlier_channels(model: nn.Module) -> tuple[str, str]:
    """Give two layers of ``tiny:llama`` outlier input channels without changing the float model.

    ``layers.1.mlp.down_proj``: intermediate channels 5 and 77 are divided by 64 in ``up_proj`` (its
    output rows) and multiplied by 64 in ``down_proj`` (its input columns). ``layers.2.self_attn.o_proj``:
    value channel 3 of kv head 0 and 9 of kv head 1 are divided by 64 in ``v_proj`` and the ``o_proj``
    columns that read them (query heads 0, 1 and 2, 3: grouped-query attention, 2 heads per kv head,
    head_dim 16) multiplied by 64. The product is unchanged; per-channel quantization of the two
    receiving layers now has one huge value per row, as real LLMs' outlier features do.
    """
    layers = model.get_submodule("model.layers")
    with torch.no_grad():
        mlp = layers[1].mlp
        for channel in (5, 77):
            mlp.up_proj.weight[channel] /= OUTLIER_SCALE
            mlp.down_proj.weight[:, channel] *= OUTLIER_SCALE
        attention = layers[2].self_attn
        for kv_head, dim in ((0, 3), (1, 9)):
            attention.v_proj.weight[kv_head * 16 + dim] /= OUTLIER_SCALE
            for head in (2 * kv_head, 2 * kv_head + 1):
                attention.o_proj.weight[:, head * 16 + dim] *= OUTLIER_SCALE
    return "model.layers.1.mlp.down_proj", "model.layers.2.self_attn.o_proj"
