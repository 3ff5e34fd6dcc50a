"""Hooks are removed in every case; layer discovery and name rules are generic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from precdiff.capture.hooks import attach
from precdiff.capture.names import decoder_layers, flatten_tensors, layer_index, name_filter
from precdiff.capture.tiny import build_model
from precdiff.errors import InputError, ModelLoadError


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None, dict[str, torch.Tensor]]:
        y = self.proj(x)
        return y, None, {"aux": y * 2}


class Stack(nn.Module):
    """Not a transformers model: the decoder list has an unusual attribute name on purpose."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])  # smaller list: not the layers
        self.trunk = nn.ModuleList([Block() for _ in range(3)])
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.trunk:
            x = block(x)[0]
        if self.fail:
            raise RuntimeError("boom")
        return x


def all_hooks(model: nn.Module) -> int:
    """The model's own forward hooks and the process-wide ones."""
    from torch.nn.modules import module as torch_module

    process_wide = len(torch_module._global_forward_hooks) + len(torch_module._global_forward_pre_hooks)
    return process_wide + sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_removed_after_normal_forward() -> None:
    model = Stack()
    seen: list[tuple[str, str]] = []
    with attach(model, name_filter(None, None), lambda n, m, r, t: seen.append((n, r))) as count:
        assert count == len([n for n, _ in model.named_modules() if n])
        model(torch.ones(1, 4))
    assert all_hooks(model) == 0
    names = [n for n, _ in seen]
    # Children end before their parent; tuple outputs get [i], dict outputs [key], None skipped.
    assert names[:4] == ["trunk.0.proj", "trunk.0[0]", "trunk.0[2][aux]", "trunk.1.proj"]
    assert "trunk.0[1]" not in names


def test_hooks_removed_when_forward_raises() -> None:
    model = Stack(fail=True)
    with pytest.raises(RuntimeError, match="boom"), attach(model, name_filter(None, None), lambda *a: None):
        model(torch.ones(1, 4))
    assert all_hooks(model) == 0


def test_hooks_removed_when_sink_raises() -> None:
    model = Stack()

    def sink(*args: object) -> None:
        raise ValueError("disk full")

    with pytest.raises(ValueError), attach(model, name_filter(None, None), sink, save_inputs=True):
        model(torch.ones(1, 4))
    assert all_hooks(model) == 0


def test_a_module_with_hooks_of_its_own_is_captured_after_them() -> None:
    """Modules without hooks share one process-wide hook, which PyTorch runs before a module's own;
    a module with its own hooks gets its own, so the sink sees the output its hooks leave."""
    model = Stack()
    doubled = model.trunk[1].register_forward_hook(lambda module, args, output: (output[0] * 2, *output[1:]))
    seen: dict[str, torch.Tensor] = {}
    with attach(model, name_filter(None, None), lambda n, m, r, t: seen.setdefault(n, t.clone())):
        out = model(torch.ones(1, 4))
    assert all_hooks(model) == 1  # the model's own hook stays, ours are gone
    doubled.remove()
    assert torch.equal(seen["trunk.1[0]"], seen["trunk.1.proj"] * 2)
    assert torch.equal(seen["trunk.2[0]"], out)


def test_modules_of_another_model_are_not_captured() -> None:
    model, other = Stack(), Stack()
    seen: list[str] = []
    with attach(model, name_filter(None, None), lambda n, m, r, t: seen.append(n)):
        other(torch.ones(1, 4))
        assert seen == []
        model(torch.ones(1, 4))
    assert seen and all_hooks(model) == 0 and all_hooks(other) == 0


def test_inputs_and_repeated_calls_are_named() -> None:
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, shared)
    seen: list[tuple[str, str]] = []
    with attach(model, name_filter(None, None), lambda n, m, r, t: seen.append((n, r)), save_inputs=True):
        model(torch.ones(1, 2))
    assert seen == [("0:input[0]", "input"), ("0", "output"), ("0#1:input[0]", "input"), ("0#1", "output")]


def test_decoder_layers_found_generically() -> None:
    assert decoder_layers(Stack()) == ("trunk", 3)
    assert decoder_layers(build_model("qwen2_moe")) == ("model.layers", 4)
    with pytest.raises(ModelLoadError, match=r"no nn\.ModuleList of repeated blocks"):
        decoder_layers(nn.Linear(2, 2))


@pytest.mark.parametrize(
    "name, index",
    [
        ("model.layers.3", 3),
        ("model.layers.3.mlp.down_proj", 3),
        ("model.layers.12[0]", 12),
        ("model.layers.2:input[0]", 2),
        ("model.layers.2#1", 2),
        ("model.norm", None),
        ("model.layers_x.1", None),
    ],
)
def test_layer_index(name: str, index: int | None) -> None:
    assert layer_index(name, "model.layers") == index


def test_name_filter_include_exclude_and_bad_regex() -> None:
    keep = name_filter(["layers\\.1\\."], ["mlp"])
    assert (
        keep("model.layers.1.self_attn") and not keep("model.layers.1.mlp") and not keep("model.layers.2.x")
    )
    with pytest.raises(InputError) as info:
        name_filter(["("], None)
    assert str(info.value).startswith("invalid regular expression '(' for --include")


def test_flatten_skips_non_tensors() -> None:
    out = list(flatten_tensors("m", (torch.ones(1), "text", [None, torch.zeros(1)])))
    assert [n for n, _ in out] == ["m[0]", "m[2][1]"]
