"""``find_sensitive_layers`` on CUDA in bf16, fp16 and fp32 (run with the device tool, never in CI).

Run: ``python -m pytest tests/gpu/test_sensitivity_gpu.py -q -rA``. The planted-outlier model of
``tests/sensitivity`` must flag the same two layers on the GPU in every base dtype, and ``--verify`` must
show the mixed model closer to float than the all-quantized one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def _sensitivity_conftest() -> object:
    """tests/sensitivity/conftest.py by path: ``conftest`` on sys.path is the root one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "sensitivity_conftest", Path(__file__).parents[1] / "sensitivity" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_planted_layers_flagged_on_cuda(dtype: torch.dtype) -> None:
    helpers = _sensitivity_conftest()
    CALIB, plant_outlier_channels = helpers.CALIB, helpers.plant_outlier_channels  # type: ignore[attr-defined]

    from precdiff.capture.models import load_model
    from precdiff.sensitivity import SensitivityOptions, find_sensitive_layers

    loaded = load_model("tiny:llama", dtype=torch.float32, device=torch.device("cpu"))
    planted = set(plant_outlier_channels(loaded.model))
    model = loaded.model.to(device="cuda", dtype=dtype)
    options = SensitivityOptions(verify=True, max_prompts=16, max_tokens=64, holdout=4, new_tokens=8)
    report = find_sensitive_layers(model, CALIB, options, tokenizer=loaded.tokenizer)
    assert report.run.device.startswith("cuda") and report.run.dtype == str(dtype).removeprefix("torch.")
    assert planted <= {layer.name for layer in report.flagged}
    assert report.verification is not None and report.verification.mixed_closer
