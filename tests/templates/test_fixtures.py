"""The vendored tokenizers are the real ones: they reproduce llama.cpp's reference tokenizations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from .conftest import FIXTURES, VECTOR_FAMILIES

# All four llama.cpp-vocabulary fixtures reproduce every llama.cpp reference tokenization.
KNOWN_DIFFERENCES: dict[str, set[str]] = {}


@pytest.mark.parametrize("family", VECTOR_FAMILIES)
def test_fixture_reproduces_llamacpp_reference_ids(family: str, tokdirs: dict[str, Path]) -> None:
    vectors = json.loads((FIXTURES / family / "llamacpp_vectors.json").read_text(encoding="utf-8"))
    assert len(vectors) == 47
    # the tokenizer.json file itself (transformers' LlamaTokenizer rebuilds its prefix-space rules on top)
    backend = Tokenizer.from_file(str(tokdirs[family] / "tokenizer.json"))
    wrong = {
        v["text"] for v in vectors if backend.encode(v["text"], add_special_tokens=False).ids != v["ids"]
    }
    assert wrong == KNOWN_DIFFERENCES.get(family, set())


def test_fixtures_stay_small() -> None:
    total = sum(p.stat().st_size for p in Path(FIXTURES).rglob("*") if p.is_file())
    assert total < 8_000_000
