"""The op-sequence alignment on synthetic op lists: order kept, shapes never mixed, fusions named."""

from __future__ import annotations

from precdiff.compare.op_align import Fusion, _lcs, op_name, overload
from precdiff.store import format as fmt
from precdiff.store.reader import TensorInfo


def _op(name: str, shape: tuple[int, ...], inputs: tuple[str, ...] = ()) -> TensorInfo:
    return TensorInfo(
        name=f"attn/{name}",
        module="attn",
        role="output",
        dtype="F32",
        shape=shape,
        stored=False,
        stats={},
        key="tensors/000000",
        kind=fmt.KIND_OP_OUTPUT,
        inputs=inputs,
    )


def test_lcs_keeps_order_and_never_pairs_different_shapes() -> None:
    a = [
        _op("aten.mm.default#0", (4, 8)),
        _op("aten.bmm.default#0", (2, 4, 4)),
        _op("aten._softmax.default#0", (2, 4, 4)),
        _op("aten.bmm.default#1", (2, 4, 4)),
        _op("aten.clone.default#0", (1, 4, 2, 4)),
    ]
    b = [
        _op("aten.mm.default#0", (4, 8)),
        _op("aten._scaled_dot_product_flash_attention.default#0[0]", (1, 2, 4, 4)),
        _op("aten.bmm.default#0", (2, 4, 8)),  # same op type, different shape: must stay unpaired
        _op("aten.clone.default#0", (1, 4, 2, 4)),
    ]
    pairs = _lcs(a, b, [()] * len(a), [()] * len(b))
    assert pairs == [(0, 0), (4, 3)]
    assert all(a[i].shape == b[j].shape for i, j in pairs)


def test_dataflow_breaks_ties_between_repeated_ops() -> None:
    a = [_op("aten.mul.Tensor#0", (4,)), _op("aten.mul.Tensor#1", (4,))]
    b = [_op("aten.mul.Tensor#0", (4,))]
    # B's only mul reads what A's second mul reads: it pairs with that one.
    pairs = _lcs(a, b, [("parameter w",), ("parameter v",)], [("parameter v",)])
    assert pairs == [(1, 0)]


def test_fusion_messages_and_names() -> None:
    fused = Fusion(
        "m.self_attn",
        ("m.self_attn/aten.bmm.default#0", "m.self_attn/aten._softmax.default#0"),
        ("m.self_attn/aten.sdpa#0",),
    )
    assert fused.message == "fused on B: m.self_attn/aten.sdpa#0 ↔ 2 ops on A"
    assert (
        Fusion("m", ("m/aten._to_copy.default#0",), ()).message == "only on A in m: m/aten._to_copy.default#0"
    )
    assert op_name("m.self_attn/aten.topk.default#0[1]") == "m.self_attn/aten.topk.default#0"
    assert op_name("model.rotary_emb#1/aten.cos.default#0") == "model.rotary_emb#1/aten.cos.default#0"
    assert overload("model.rotary_emb#1/aten.cos.default#2[0]") == "aten.cos.default"
