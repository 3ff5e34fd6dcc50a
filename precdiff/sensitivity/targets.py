"""The modules whose weights are quantized, their fake-quantized weights, and swapping them in.

Targets are every ``nn.Linear`` and ``nn.Embedding`` (so also the LM head) in ``named_modules()`` order.
A weight tied between two modules (embedding and LM head) is one tensor; each module is its own target,
and swapping replaces the parameter of one module only, so the other keeps the float weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from precdiff.capture.names import decoder_layers, layer_index
from precdiff.errors import ModelLoadError
from precdiff.sensitivity.quantizers import QuantScheme, fake_quantize

KINDS: tuple[tuple[type[nn.Module], str], ...] = ((nn.Linear, "linear"), (nn.Embedding, "embedding"))


@dataclass(frozen=True)
class Target:
    """One module to quantize and where it sits."""

    name: str
    module: nn.Module
    kind: str  # linear | embedding
    layer: int | None
    op: str

    @property
    def weight(self) -> torch.Tensor:
        weight = self.module.weight
        assert isinstance(weight, torch.Tensor)
        return weight


def find_targets(model: nn.Module) -> list[Target]:
    """Every Linear and Embedding of ``model`` with its decoder-layer index and in-layer name."""
    try:
        layers_path: str | None = decoder_layers(model)[0]
    except ModelLoadError:  # a model without repeated blocks still has Linears to measure
        layers_path = None
    targets = []
    for name, module in model.named_modules():
        kind = next((k for cls, k in KINDS if isinstance(module, cls)), None)
        if kind is None or not isinstance(getattr(module, "weight", None), torch.Tensor):
            continue
        layer = layer_index(name, layers_path) if layers_path else None
        op = (
            name.split(".", len(layers_path.split(".")) + 1)[-1]
            if layer is not None and layers_path
            else name
        )
        targets.append(Target(name, module, kind, layer, op))
    return targets


def quantized_weights(targets: Iterable[Target], scheme: QuantScheme) -> dict[str, torch.Tensor]:
    """Fake-quantized weight of each target (one computation per distinct tensor, so tied weights share)."""
    by_tensor: dict[int, torch.Tensor] = {}
    weights = {}
    with torch.no_grad():
        for target in targets:
            key = id(target.weight)
            if key not in by_tensor:
                by_tensor[key] = fake_quantize(target.weight, scheme)
            weights[target.name] = by_tensor[key]
    return weights


@contextmanager
def swapped(modules: Iterable[tuple[nn.Module, torch.Tensor]]) -> Iterator[None]:
    """Give each module the paired weight for the duration of the block, then its own parameter back."""
    saved: list[tuple[nn.Module, nn.Parameter]] = []
    try:
        for module, weight in modules:
            original = module._parameters["weight"]
            assert original is not None
            saved.append((module, original))
            module._parameters["weight"] = nn.Parameter(weight, requires_grad=False)
        yield
    finally:
        for module, original in reversed(saved):
            module._parameters["weight"] = original
