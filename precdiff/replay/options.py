"""What ``replay`` replays (:class:`ReplayOptions`) and the model it loads, for module and op replay."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from precdiff.capture.models import load_model
from precdiff.config import KERNEL_MODES
from precdiff.errors import InputError, ReplayError
from precdiff.store.manifest import Manifest
from precdiff.store.reader import Capture

DTYPE_NAMES = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and where. Field names match the CLI options (``--tensor``, ``--device`` …).

    Attributes:
        tensor: the captured output to replay (``model.layers.3.mlp.down_proj``), its module call, or an
            op output of an op-level capture (``model.layers.3.mlp.down_proj/aten.mm.default#0``).
        device: where to replay (``auto`` = this machine's accelerator, else the CPU).
        dtype: the dtype to replay in; ``None`` = the capture's dtype.
        kernels: ``standard`` or ``batch-invariant``.
        model: the model directory (or ``tiny:<arch>``); ``None`` = the source the manifest records.
        emit_repro: also write a standalone reproducer into this directory (``--emit-repro``).
    """

    tensor: str
    device: str = "auto"
    dtype: str | None = None
    kernels: str = "standard"
    model: str | None = None
    emit_repro: str | None = None

    def __post_init__(self) -> None:
        if self.kernels not in KERNEL_MODES:
            raise InputError(f"unknown --kernels {self.kernels!r}; use one of: {', '.join(KERNEL_MODES)}")


def load_checked(manifest: Manifest, cap: Capture, model: str | None) -> tuple[nn.Module, str | None]:
    """The capture's model in float32 on the CPU (``model`` or the manifest's source), weights checked."""
    source = model or manifest.model.source
    if not source:
        raise ReplayError(f"{cap.path} does not record its model; pass it: --model DIR / model='DIR'")
    attn = manifest.attn_implementation if manifest.kernels != "batch-invariant" else None
    loaded = load_model(
        source,
        dtype=torch.float32,
        device=torch.device("cpu"),
        attn_implementation=attn,
        seed=manifest.seed or 0,
    )
    recorded = manifest.model.weights_sha256
    if recorded is not None and loaded.weights_sha256 is not None and loaded.weights_sha256 != recorded:
        raise ReplayError(
            f"the weights of {source} (sha256 {loaded.weights_sha256[:12]}…) are not those {cap.path} was "
            f"captured with ({recorded[:12]}…); pass the model the capture ran: --model DIR / model='DIR'"
        )
    return loaded.model, loaded.weights_sha256
