"""The README's first command: two captures of ``tiny:llama`` in two configurations, compared."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from precdiff.capture import capture
from precdiff.compare import Comparison
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.errors import InputError

DEMO_MODEL = "tiny:llama"
DEMO_PROMPT = "The same model gives different answers on two machines because"


def second_configuration() -> CaptureOptions:
    """CUDA bfloat16 when a GPU is present, else CPU bfloat16."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return CaptureOptions(device=device, dtype="bfloat16")


def run_demo(out_dir: str | os.PathLike[str]) -> Comparison:
    """Capture the reference (CPU float32) and the second configuration, and compare them.

    The second capture reuses the reference's exact token ids (``--tokens-from``).
    """
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the demo folder --out {folder}: {exc.strerror}; pick another"
        ) from None
    reference = folder / "reference_cpu_float32.h5"
    other_options = second_configuration()
    other = folder / f"other_{other_options.device}_{other_options.dtype}.h5"
    capture(
        DEMO_MODEL, reference, CaptureInput(prompt=DEMO_PROMPT), CaptureOptions(device="cpu", dtype="float32")
    )
    capture(DEMO_MODEL, other, CaptureInput(tokens_from=str(reference)), other_options)
    return compare(reference, other)
