"""Version-1 captures keep reading: a committed file written by the format-1 writer, read and compared."""

from __future__ import annotations

from pathlib import Path

from precdiff.compare.compare import compare
from precdiff.store import format as fmt
from precdiff.store.reader import open_capture

V1 = Path(__file__).parents[1] / "fixtures" / "captures" / "v1_tiny_llama.h5"


def test_v1_fixture_reads_with_v2_fields_absent() -> None:
    with open_capture(V1) as cap:
        assert cap.format_version == 1 and cap.complete
        infos = cap.tensor_infos()
        assert len(infos) == 58 and infos[0].name == "model.embed_tokens"
        assert all(i.kind == fmt.KIND_MODULE_OUTPUT for i in infos)
        assert all(i.token_axis is None and i.inputs is None for i in infos)
        assert all(i.alias_of is None and i.placement is None for i in infos)
        assert cap.sketch("model.embed_tokens") is None
        # The fallback token axis of version 1: the first axis of the prompt's length.
        assert cap.token_axis("model.embed_tokens", len(cap.input_ids)) == 1
        assert cap.tensor("model.embed_tokens").shape == (1, len(cap.input_ids), 64)
        assert cap.manifest is not None and cap.manifest.capture.level is None


def test_v1_fixture_compares_with_itself() -> None:
    result = compare(V1, V1)
    assert result.verdict.status == "match" and len(result.tensors) == 58


def test_v2_fields_and_reserved_fields_round_trip(tmp_path: Path) -> None:
    import torch

    from precdiff.store import CaptureWriter
    from precdiff.store.dtypes import to_storage

    path = tmp_path / "v2.h5"
    writer = CaptureWriter(path)
    x = torch.arange(6.0).reshape(1, 3, 2)
    stats = [0.0] * len(fmt.STAT_NAMES)
    writer.write_tensor(
        "m", module="m", role="output", dtype=x.dtype, shape=x.shape, stats=stats, data=to_storage(x)
    )
    writer.write_tensor(
        "m/aten.add.Tensor#0",
        module="m",
        role="output",
        dtype=x.dtype,
        shape=x.shape,
        stats=stats,
        data=None,
        kind=fmt.KIND_OP_OUTPUT,
        token_axis=1,
        inputs=("m", "parameter m.weight", fmt.REF_CONSTANT),
        alias_of="m",
        placement={"dim": 1, "rank": 0, "world_size": 2, "full_shape": [1, 6, 2]},
    )
    writer.finish()
    with open_capture(path) as cap:
        plain, op = cap.tensor_infos()
        assert (plain.kind, plain.token_axis, plain.inputs, plain.alias_of, plain.placement) == (
            fmt.KIND_MODULE_OUTPUT,
            None,
            None,
            None,
            None,
        )
        assert op.kind == fmt.KIND_OP_OUTPUT and op.token_axis == 1
        assert op.inputs == ("m", "parameter m.weight", "constant")
        assert op.alias_of == "m" and op.placement == {
            "dim": 1,
            "rank": 0,
            "world_size": 2,
            "full_shape": [1, 6, 2],
        }
        assert cap.sketch("m") is None and cap.token_axis("m", 3) is None
