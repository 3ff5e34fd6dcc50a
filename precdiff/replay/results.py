"""The result of replaying one captured module call; ``to_dict()`` is the replay JSON (docs/replay.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from precdiff._json import json_float

# ReplayResult.status values.
COMPUTES_DIFFERENTLY = "computes_differently"  # the op itself is at fault in the captured run
AS_EXPECTED = "as_expected"  # the op computed what its dtype explains from the inputs it received


@dataclass(frozen=True)
class ReplayResult:
    """One module call replayed from its captured inputs, here and in float64 on the CPU.

    Errors are relative L2 distances; ``captured_vs_reference`` is the captured output against the
    float64 replay of the same inputs, ``here_vs_reference`` this machine's replay (``device``,
    ``dtype``) against it, ``captured_vs_here`` the captured output against this machine's replay.
    """

    run: str
    tensor: str
    module: str
    call: str
    module_class: str
    inputs: tuple[str, ...]
    device: str
    dtype: str  # the dtype replayed here
    captured_dtype: str  # the capture's run dtype
    kernels: str
    captured_vs_reference: float
    here_vs_reference: float
    captured_vs_here: float
    reproduced_bitwise: bool  # this machine's replay equals the captured output bit for bit
    expected: float  # the error the captured dtype explains for this call in isolation
    ratio: float  # captured_vs_reference / expected
    status: str  # COMPUTES_DIFFERENTLY | AS_EXPECTED
    message: str  # one line
    weights_sha256: str | None  # of the weights replayed (checked against the capture's manifest)
    repro: str | None = None  # directory of the reproducer (--emit-repro)

    def __bool__(self) -> bool:
        return self.status == AS_EXPECTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "tensor": self.tensor,
            "module": self.module,
            "call": self.call,
            "module_class": self.module_class,
            "inputs": list(self.inputs),
            "device": self.device,
            "dtype": self.dtype,
            "captured_dtype": self.captured_dtype,
            "kernels": self.kernels,
            "captured_vs_reference": json_float(self.captured_vs_reference),
            "here_vs_reference": json_float(self.here_vs_reference),
            "captured_vs_here": json_float(self.captured_vs_here),
            "reproduced_bitwise": self.reproduced_bitwise,
            "expected": json_float(self.expected),
            "ratio": json_float(self.ratio),
            "status": self.status,
            "message": self.message,
            "weights_sha256": self.weights_sha256,
            "repro": self.repro,
        }
