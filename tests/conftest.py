"""Shared fixtures: offline tiny models, clean numeric environment, capture helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# Environment variables that change numerics or capture behaviour; cleared for every test.
NUMERIC_ENV = (
    "CUBLAS_WORKSPACE_CONFIG",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "PRECDIFF_CAPTURE",
)


@pytest.fixture(autouse=True)
def clean_numeric_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in NUMERIC_ENV:
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_dir("llama")``: a saved tiny model directory, written once per session."""
    from precdiff.capture import save_tiny

    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = save_tiny(arch, tmp_path_factory.mktemp(f"tiny_{arch}"))
        return cache[arch]

    return make


@pytest.fixture(scope="session")
def llama_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 CPU capture of tiny:llama (session-wide, read-only for tests)."""
    from precdiff.capture import capture
    from precdiff.config import CaptureInput, CaptureOptions

    path = tmp_path_factory.mktemp("captures") / "llama_fp32.h5"
    capture(
        "tiny:llama",
        path,
        CaptureInput(prompt="Hello, world"),
        CaptureOptions(device="cpu", max_new_tokens=4),
    )
    return path
