"""``capture --level op``: every aten op under its module call, with input references and token axes."""

from __future__ import annotations

from pathlib import Path

import pytest

from precdiff.capture import capture
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.errors import InputError
from precdiff.store import format as fmt
from precdiff.store.reader import open_capture

IDS = CaptureInput(input_ids=(5, 6, 7, 8, 9, 10))
OP = CaptureOptions(device="cpu", level="op", max_new_tokens=1, top_k=2)


def test_op_level_names_references_and_token_axes(tmp_path: Path) -> None:
    path = capture("tiny:llama", tmp_path / "op.h5", IDS, OP).path
    with open_capture(path) as cap:
        assert cap.format_version == fmt.FORMAT_VERSION
        assert cap.manifest is not None and cap.manifest.capture.level == "op"
        infos = {i.name: i for i in cap.tensor_infos()}
    q = infos["model.layers.0.self_attn.q_proj/aten.mm.default#0"]
    assert q.kind == fmt.KIND_OP_OUTPUT and q.module == "model.layers.0.self_attn.q_proj"
    assert q.inputs == (
        "model.layers.0.input_layernorm/aten.mul.Tensor#1",
        "parameter model.layers.0.self_attn.q_proj.weight",
    )
    assert q.shape == (6, 64) and q.token_axis == 0
    # The residual add of layer 0 reads the embedding output and o_proj's product.
    add = infos["model.layers.0/aten.add.Tensor#0"]
    assert add.inputs == (
        "model.embed_tokens/aten.embedding.default#0",
        "model.layers.0.self_attn.o_proj/aten.mm.default#0",
    )
    assert infos["model.embed_tokens/aten.embedding.default#0"].inputs == (
        "parameter model.embed_tokens.weight",
        fmt.REF_CONSTANT,
    )
    assert infos["model.layers.0"].kind == fmt.KIND_MODULE_OUTPUT and infos["model.layers.0"].token_axis == 1
    # Every reference names an earlier tensor, a parameter, a buffer or a constant.
    seen: set[str] = set()
    for name, info in infos.items():
        for ref in info.inputs or ():
            assert (
                ref in seen or ref == fmt.REF_CONSTANT or ref.startswith((fmt.REF_PARAMETER, fmt.REF_BUFFER))
            )
        seen.add(name)
    assert not any(i.kind == fmt.KIND_OP_OUTPUT and "view" in i.name for i in infos.values())


def test_all_ops_summary_and_include(tmp_path: Path) -> None:
    options = CaptureOptions(
        device="cpu", level="op", all_ops=True, summary=True, include=(r"layers\.1\.",), max_new_tokens=0
    )
    path = capture("tiny:llama", tmp_path / "sel.h5", IDS, options).path
    with open_capture(path) as cap:
        infos = cap.tensor_infos()
    assert infos and all(i.name.startswith("model.layers.1.") and not i.stored for i in infos)
    assert any(".view." in i.name or "transpose" in i.name for i in infos)  # --all-ops keeps views


def test_unknown_level_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown --level 'ops'; use --level / level= one of: module, op"):
        capture("tiny:llama", tmp_path / "x.h5", IDS, CaptureOptions(device="cpu", level="ops"))


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((1, 7, 64), 1),  # hidden states, rotary tables
        ((1, 4, 7, 16), 2),  # heads after the transpose
        ((1, 4, 7, 7), 2),  # attention weights: the query axis
        ((1, 4, 7), 2),  # logsumexp
        ((7, 128), 0),  # a linear layer's aten.mm, MoE token buffers, router logits
        ((4, 7, 16), 1),  # bmm over batch·heads
        ((64, 64), None),  # a weight
        ((3, 64), None),  # rows of the tokens routed to one expert
        ((), None),
    ],
)
def test_token_axis_recorded_at_capture(shape: tuple[int, ...], axis: int | None) -> None:
    from precdiff.capture.token_axis import token_axis

    assert token_axis(shape, 7) == axis


def test_op_level_with_batch_invariant_kernels(tmp_path: Path) -> None:
    options = CaptureOptions(
        device="cpu",
        level="op",
        summary=True,
        kernels="batch-invariant",
        include=(r"layers\.0\.",),
        max_new_tokens=0,
    )
    path = capture("tiny:llama", tmp_path / "bi.h5", IDS, options).path
    with open_capture(path) as cap:
        names = cap.tensor_names()
    # The override kernel's own ops are part of the kernel, not traced as model ops.
    assert [n for n in names if n.startswith("model.layers.0.self_attn.q_proj")] == [
        "model.layers.0.self_attn.q_proj/aten.mm.default#0",
        "model.layers.0.self_attn.q_proj",
    ]
