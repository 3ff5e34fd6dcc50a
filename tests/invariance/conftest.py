"""Tiny float32 CPU models for the invariance tests.

``dense_variant``: tiny:llama with ``intermediate_size=100``. With a row width that is not a multiple
of the SIMD width, the probe's last elements land in the scalar tail of standard CPU ``silu`` when
the probe runs alone but in the vector body inside a batch, so standard kernels are observably not
batch invariant (measured on the CI CPU; tiny:llama itself, 128 wide, happened to be invariant).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from torch import nn

DENSE_OVERRIDES = {"intermediate_size": 100}


@pytest.fixture(scope="session")
def dense_variant() -> tuple[nn.Module, Any]:
    from precdiff.capture import tiny

    return tiny.build_model("llama", overrides=DENSE_OVERRIDES), tiny.build_tokenizer("llama")


@pytest.fixture(scope="session")
def dense_variant_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from precdiff.capture import save_tiny

    return save_tiny("llama", tmp_path_factory.mktemp("llama_i100"), overrides=DENSE_OVERRIDES)
