"""Fixtures of the reference/replay tests: real tiny:llama runs and synthetic captures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from reference_runs import capture_run

from precdiff.capture.stats import stats_to_dict, tensor_stats_torch
from precdiff.store import CaptureWriter
from precdiff.store.dtypes import to_storage
from precdiff.store.manifest import Manifest


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``fp64`` (the reference), ``fp32``, ``bf16`` and ``planted`` (fp32 with the fault)."""
    folder = tmp_path_factory.mktemp("reference_runs")
    return {
        "fp64": capture_run(folder / "fp64.h5", "float64"),
        "fp32": capture_run(folder / "fp32.h5", "float32"),
        "bf16": capture_run(folder / "bf16.h5", "bfloat16"),
        "planted": capture_run(folder / "planted.h5", "float32", fault=True),
    }


SYNTHETIC_MANIFEST: dict[str, Any] = {
    "device": {"type": "cpu", "index": None, "name": "x86_64", "capability": None},
    "model": {"weights_sha256": "w" * 64, "architecture": "LlamaForCausalLM", "layers_path": "model.layers"},
    "input": {"num_tokens": 4},
}


@pytest.fixture
def write_capture(tmp_path: Path) -> Callable[..., Path]:
    """``write_capture("r.h5", "float64", {name: array})``: a synthetic capture through the real writer."""

    def write(
        name: str, dtype: str, tensors: Mapping[str, np.ndarray], ids: tuple[int, ...] = (1, 2, 3, 4)
    ) -> Path:
        writer = CaptureWriter(tmp_path / name)
        writer.write_manifest(Manifest.from_dict({**SYNTHETIC_MANIFEST, "dtype": dtype}))
        writer.write_input(list(ids), None)
        for tensor_name, value in tensors.items():
            tensor = torch.from_numpy(value)
            writer.write_tensor(
                tensor_name,
                module=tensor_name.split("/")[0].split("[")[0].split(":")[0],
                role="input" if ":input[" in tensor_name else "output",
                dtype=tensor.dtype,
                shape=tuple(tensor.shape),
                stats=stats_to_dict(tensor_stats_torch(tensor).tolist()),
                data=to_storage(tensor),
            )
        return writer.finish()

    return write
