"""Faults planted *inside* one op of one layer, for the op-level tests.

A fault is a Python kernel registered for one aten op on the CPU dispatch key (below the tracer, as a
faulty device kernel would be) while one module call of one layer runs, so the op keeps its name and
place in the graph and only its numbers change. Imported as ``from op_faults import ...``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn
from transformers.models.llama import modeling_llama

import precdiff.capture.runner as runner

SCALE = 1.02  # a 2 % error: far above the float32 noise floor, far below anything non-finite


def _softmax(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    shifted = torch.exp(x - torch.amax(x, dim=dim, keepdim=True))
    return shifted / torch.sum(shifted, dim=dim, keepdim=True) * SCALE


def _rsqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.reciprocal(torch.sqrt(x)) * SCALE


def _add(x: torch.Tensor, y: Any, alpha: Any = 1) -> torch.Tensor:
    return torch.sub(x, y, alpha=-alpha) * SCALE  # x - (-y): bit-identical to x + y, then the fault


KERNELS: dict[str, Callable[..., torch.Tensor]] = {"_softmax": _softmax, "rsqrt": _rsqrt, "add.Tensor": _add}


class _Override:
    """One aten kernel replaced on CPU between :meth:`on` and :meth:`off`."""

    def __init__(self, op: str) -> None:
        self.op, self.lib = op, None

    def on(self, *_: Any) -> None:
        self.lib = torch.library.Library("aten", "IMPL")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "overriding a previously registered kernel"
            self.lib.impl(self.op, KERNELS[self.op], "CPU")

    def off(self, *_: Any) -> None:
        if self.lib is not None:
            self.lib._destroy()
            self.lib = None


def _install(model: nn.Module, fault: str, layer: int, monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = model.get_submodule(f"model.layers.{layer}")
    if fault == "softmax":
        override = _Override("_softmax")
        target = decoder.get_submodule("self_attn")
        target.register_forward_pre_hook(override.on)
        target.register_forward_hook(override.off)
    elif fault == "rsqrt":
        override = _Override("rsqrt")
        target = decoder.get_submodule("input_layernorm")
        target.register_forward_pre_hook(override.on)
        target.register_forward_hook(override.off)
    elif fault == "residual":
        # The first add after self_attn returns, in the decoder layer itself, is the residual add.
        override = _Override("add.Tensor")
        decoder.get_submodule("self_attn").register_forward_hook(override.on)
        decoder.get_submodule("post_attention_layernorm").register_forward_pre_hook(override.off)
    elif fault == "rotary":
        override = _Override("add.Tensor")
        active = {"on": False}
        attn = decoder.get_submodule("self_attn")
        attn.register_forward_pre_hook(lambda *_: active.update(on=True))
        attn.register_forward_hook(lambda *_: active.update(on=False))
        original = modeling_llama.apply_rotary_pos_emb

        def apply(*args: Any, **kwargs: Any) -> Any:
            if not active["on"]:
                return original(*args, **kwargs)
            override.on()
            try:
                return original(*args, **kwargs)
            finally:
                override.off()

        monkeypatch.setattr(modeling_llama, "apply_rotary_pos_emb", apply)
    else:
        raise ValueError(fault)


@contextmanager
def planted(monkeypatch: pytest.MonkeyPatch, fault: str, layer: int) -> Iterator[None]:
    """While active, every ``capture()`` plants ``fault`` in decoder layer ``layer`` of its model."""
    original = runner.load_model

    def load(*args: Any, **kwargs: Any) -> Any:
        loaded = original(*args, **kwargs)
        _install(loaded.model, fault, layer, monkeypatch)
        return loaded

    monkeypatch.setattr(runner, "load_model", load)
    yield
    monkeypatch.setattr(runner, "load_model", original)


@torch.library.custom_op("precdiff_test::rms_norm", mutates_args=())
def fused_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as one op, as a device's fused kernel (``npu_rms_norm``, CUDA ``_fused_rms_norm``) is."""
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return weight * (x.float() * torch.rsqrt(variance + eps)).to(x.dtype)


def rms_norm_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every LlamaRMSNorm one fused op (:func:`fused_rms_norm`) instead of the Hugging Face code's
    pow/mean/add/rsqrt/mul (on CPU ``F.rms_norm`` decomposes into those too)."""

    def forward(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = fused_rms_norm(hidden_states, self.weight, self.variance_epsilon)
        return out

    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", forward)
