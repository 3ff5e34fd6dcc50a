"""Synthetic captures with known numbers, written with the real CaptureWriter."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from precdiff.capture.stats import stats_to_dict, tensor_stats_torch
from precdiff.store import CaptureWriter
from precdiff.store.dtypes import to_storage
from precdiff.store.manifest import Manifest

BASE_MANIFEST: dict[str, Any] = {
    "dtype": "float32",
    "device": {"type": "cpu", "index": None, "name": "x86_64", "capability": None},
    "versions": {"torch": "2.13.0", "transformers": "5.23.0"},
    "attn_implementation": "sdpa",
    "kernels": "standard",
    "determinism": {"deterministic": False},
    "model": {
        "weights_sha256": "w" * 64,
        "architecture": "LlamaForCausalLM",
        "model_type": "llama",
        "layers_path": "model.layers",
        "num_layers": 3,
        "config": {"hidden_size": 8, "dtype": "float32"},
    },
    "tokenizer": {"sha256": "t", "chat_template_sha256": "c"},
    "input": {"source": "prompt", "num_tokens": 4},
}

MakeCapture = Callable[..., Path]


def merge_manifest(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_manifest(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_capture(tmp_path: Path) -> MakeCapture:
    """``make_capture("a.h5", {name: tensor}, manifest={...changes}, ids=[...], finish=True, summary=False)``."""

    def make(
        name: str,
        tensors: Mapping[str, torch.Tensor | np.ndarray],
        *,
        manifest: Mapping[str, Any] | None = None,
        ids: Sequence[int] = (1, 2, 3, 4),
        finish: bool = True,
        summary: bool = False,
        logprobs: tuple[np.ndarray, np.ndarray] | None = None,
        generation: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
        roles: Mapping[str, str] | None = None,
    ) -> Path:
        path = tmp_path / name
        writer = CaptureWriter(path)
        writer.write_manifest(Manifest.from_dict(merge_manifest(BASE_MANIFEST, manifest or {})))
        writer.write_input(list(ids), "text")
        for tensor_name, value in tensors.items():
            tensor = torch.as_tensor(value)
            module = tensor_name.split("[")[0].split(":")[0]
            writer.write_tensor(
                tensor_name,
                module=module,
                role=(roles or {}).get(tensor_name, "output"),
                dtype=tensor.dtype,
                shape=tuple(tensor.shape),
                stats=stats_to_dict(tensor_stats_torch(tensor).tolist()),
                data=None if summary else to_storage(tensor),
            )
        if logprobs is not None:
            writer.write_prompt_logprobs(*logprobs)
        if generation is not None:
            writer.write_generation(*generation)
        if finish:
            writer.finish()
            return path
        writer.abort()
        return writer.partial_path

    return make
