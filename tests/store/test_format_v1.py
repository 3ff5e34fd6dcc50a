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
