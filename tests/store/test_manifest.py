"""The typed manifest: round trip, tolerant reading, and every comparability rule naming a real field."""

from __future__ import annotations

import pytest

from precdiff.compare.align import _RULES, _SKIP
from precdiff.store.manifest import Manifest, ModelFacts, TokenizerFacts, field_paths, resolves


def test_round_trip_keeps_every_field() -> None:
    manifest = Manifest(
        precdiff_version="0.1.0",
        format_version=1,
        command_line=("precdiff", "capture", "tiny:llama"),
        device={"type": "cuda", "name": "NVIDIA H200", "index": 0},
        versions={"torch": "2.11.0"},
        dtype="bfloat16",
        model=ModelFacts(
            source="tiny:llama", weights_sha256="ab" * 32, num_layers=4, config={"hidden_size": 64}
        ),
        tokenizer=TokenizerFacts(class_name="PreTrainedTokenizerFast", bos_token_id=1),
    )
    data = manifest.to_dict()
    assert data["tokenizer"]["class"] == "PreTrainedTokenizerFast"  # the on-disk key is "class"
    assert data["command_line"] == ["precdiff", "capture", "tiny:llama"]
    assert Manifest.from_dict(data) == manifest


def test_older_and_partial_manifests_read_with_defaults() -> None:
    manifest = Manifest.from_dict({"model": {"weights_sha256": None}, "dtype": "float32", "unknown": 1})
    assert manifest.dtype == "float32" and manifest.model.weights_sha256 is None
    assert manifest.tokenizer is None and manifest.device == {} and manifest.capture.include == ()
    assert Manifest.from_dict({"tokenizer": None}).tokenizer is None


@pytest.mark.parametrize("prefix", [prefix for prefix, _ in _RULES] + list(_SKIP))
def test_every_comparability_rule_names_a_manifest_field(prefix: str) -> None:
    assert resolves(prefix), f"rule {prefix!r} names no field of store.manifest.Manifest"


def test_resolves_rejects_renamed_fields() -> None:
    assert resolves("model.weights_sha256") and resolves("device.capability") and resolves("versions.torch")
    assert not resolves("model.weights_hash") and not resolves("devices.type")
    assert field_paths()["device"] is True and field_paths()["model.source"] is False
