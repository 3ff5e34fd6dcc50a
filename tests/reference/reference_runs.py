"""Real tiny:llama captures for the three-way comparison and replay tests.

``planted`` runs the same model with a fault planted by construction: a forward hook multiplies the
output of ``model.layers.1.mlp.down_proj`` by ``1 + PLANTED_ERROR`` (a rel-L2 error of exactly
PLANTED_ERROR, on every CPU), so the weights and tokens stay those of the clean runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from precdiff.config import CaptureInput, CaptureOptions

PROMPT = "The quick brown fox"
PLANTED_MODULE = "model.layers.1.mlp.down_proj"
PLANTED_ERROR = 0.02


def capture_run(path: Path, dtype: str, *, fault: bool = False) -> Path:
    import precdiff.capture.runner as runner

    original = runner.load_model

    def planted(*args: Any, **kwargs: Any) -> Any:
        loaded = original(*args, **kwargs)
        loaded.model.get_submodule(PLANTED_MODULE).register_forward_hook(
            lambda _m, _i, output: output * (1.0 + PLANTED_ERROR)
        )
        return loaded

    with pytest.MonkeyPatch.context() as patch:
        if fault:
            patch.setattr(runner, "load_model", planted)
        runner.capture(
            "tiny:llama",
            path,
            CaptureInput(prompt=PROMPT),
            CaptureOptions(device="cpu", dtype=dtype, save_inputs=True, max_new_tokens=0),
        )
    return path
