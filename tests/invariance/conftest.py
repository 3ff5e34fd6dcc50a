"""Tiny float32 CPU models for the invariance tests.

``planted_dense``: tiny:llama whose ``model.layers.1.mlp.act_fn`` rounds by the row count
(``tests/conftest.py::round_by_rows``), run under batch-invariant kernels so that every other op is
invariant by construction. The first non-invariant tensor is then that module on every CPU: whether the
*standard* CPU kernels are batch invariant depends on the machine's SIMD width and thread count, so no
test relies on them being variant.
"""

from __future__ import annotations

from typing import Any

import pytest
from planted import plant_batch_dependent
from torch import nn

PLANTED = "model.layers.1.mlp.act_fn"


@pytest.fixture
def planted_dense() -> tuple[nn.Module, Any]:
    from precdiff.capture import tiny

    return plant_batch_dependent(tiny.build_model("llama"), PLANTED), tiny.build_tokenizer("llama")
