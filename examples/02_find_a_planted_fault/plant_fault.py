"""Perturb one module's weights in a copy of a model directory (the 'buggy kernel' of this example).

python plant_fault.py SOURCE_DIR TARGET_DIR PARAMETER [SCALE]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def main() -> None:
    source, target, parameter = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    scale = float(sys.argv[4]) if len(sys.argv) > 4 else 0.3
    shutil.copytree(source, target, dirs_exist_ok=True)
    weights = load_file(target / "model.safetensors")
    weight = weights[parameter].float()
    # Relative to the weight's RMS, so that the output error is about `scale` whatever the layer.
    rms = weight.pow(2).mean().sqrt()
    noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)) * rms * scale
    weights[parameter] = (weight + noise).to(weights[parameter].dtype)
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    print(f"perturbed {parameter} by {scale:.0%} of its RMS in {target}")


if __name__ == "__main__":
    main()
