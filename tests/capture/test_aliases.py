"""Alias de-duplication: a tensor that *is* one captured earlier is stored as a reference to it."""

from __future__ import annotations

import functools
import gc
from pathlib import Path

import pytest
import torch
from torch import nn

import precdiff.capture.runner as runner
from precdiff.capture import capture
from precdiff.capture.aliases import AliasIndex
from precdiff.capture.hooks import attach
from precdiff.capture.sink import TensorSink
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.store import CaptureWriter, open_capture

IDS = CaptureInput(input_ids=(3, 1, 4, 1, 5, 9, 2, 6))
LLAMA_ALIASES = {
    **{f"model.layers.{i}.self_attn[0]": f"model.layers.{i}.self_attn.o_proj" for i in range(4)},
    **{f"model.layers.{i}.mlp": f"model.layers.{i}.mlp.down_proj" for i in range(4)},
    "model[last_hidden_state]": "model.norm",
}


def test_alias_index_takes_only_the_same_live_unmodified_view() -> None:
    index: AliasIndex[str] = AliasIndex()
    base = torch.arange(24.0).reshape(4, 6)
    index.add(base, "base")
    assert index.find(base) == "base"
    assert index.find(base.view(4, 6)) == "base"  # another view object, same elements
    assert index.find(base.t()) is None  # other strides
    assert index.find(base[1:]) is None  # other offset and shape
    assert index.find(base.view(torch.int32)) is None  # other dtype
    assert index.find(base.clone()) is None  # equal values, other memory
    base.add_(1.0)  # modified in place after it was captured
    assert index.find(base) is None


def test_alias_index_add_after_find_of_another_tensor() -> None:
    """add() reuses find()'s key only for the tensor find() was asked about."""
    index: AliasIndex[str] = AliasIndex()
    asked, added = torch.zeros(8), torch.ones(4)
    assert index.find(asked) is None
    index.add(added, "added")
    assert index.find(added) == "added"
    assert index.find(asked) is None
    index.add(asked, "asked")  # the key of the last find() (of ``added``) must not be taken for it
    assert index.find(asked) == "asked" and index.find(added) == "added"


def test_alias_index_never_matches_a_freed_tensor() -> None:
    """A dead earlier tensor is never an alias, even when the new one has its exact address and view."""
    index: AliasIndex[str] = AliasIndex()
    storage = torch.zeros(64)
    first = storage[:32]
    index.add(first, "first")
    del first
    gc.collect()
    assert index.find(storage[:32]) is None


class _InPlace(nn.Module):
    """A child output that its parent then modifies in place and returns."""

    def __init__(self) -> None:
        super().__init__()
        self.child = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.child(x)
        return y.mul_(2.0)


def test_in_place_modified_tensor_is_stored_not_aliased(tmp_path: Path) -> None:
    model = _InPlace()
    path = tmp_path / "inplace.h5"
    with CaptureWriter(path) as writer:
        sink = TensorSink(writer, summary=False, device=torch.device("cpu"))
        with torch.no_grad(), attach(nn.Sequential(model), lambda name: True, sink):
            out = model(torch.ones(2, 4))
        sink.flush()
        writer.finish()
    with open_capture(path) as cap:
        assert [i.alias_of for i in cap.tensor_infos()] == [None, None]
        child, parent = cap.tensor("0.child"), cap.tensor("0")
    assert torch.equal(torch.from_numpy(parent), out) and torch.equal(torch.from_numpy(child) * 2, out)


@pytest.fixture(scope="module")
def llama_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny:llama in float32 and bfloat16, each with de-duplication (the default) and without."""
    folder = tmp_path_factory.mktemp("aliases")
    runs: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as patch:
        for dedupe in (True, False):
            patch.setattr(runner, "TensorSink", functools.partial(TensorSink, dedupe=dedupe))
            for dtype in ("float32", "bfloat16"):
                options = CaptureOptions(device="cpu", dtype=dtype, max_new_tokens=2)
                runs[f"{dtype}-{dedupe}"] = capture(
                    "tiny:llama", folder / f"{dtype}-{dedupe}.h5", IDS, options
                ).path
    return runs


def test_llama_aliases_are_stored_as_references(llama_runs: dict[str, Path]) -> None:
    deduped, plain = llama_runs["float32-True"], llama_runs["float32-False"]
    with open_capture(deduped) as cap, open_capture(plain) as full:
        aliases = {i.name: i.alias_of for i in cap.tensor_infos() if i.alias_of}
        assert aliases == LLAMA_ALIASES
        assert cap.tensor_names() == full.tensor_names()
        assert not any(i.alias_of for i in full.tensor_infos())
        for name, target in aliases.items():
            assert cap.info(name).stored and cap.info(name).stats == cap.info(target).stats
            assert (cap.tensor(name) == full.tensor(name)).all()
    assert deduped.stat().st_size < 0.95 * plain.stat().st_size


def test_compare_is_unchanged_by_deduplication(llama_runs: dict[str, Path]) -> None:
    deduped = compare(llama_runs["float32-True"], llama_runs["bfloat16-True"]).to_dict()
    plain = compare(llama_runs["float32-False"], llama_runs["bfloat16-False"]).to_dict()
    for side in (deduped, plain):
        side.pop("captures")
    aliased = {t["name"]: t.pop("alias_of") for t in deduped["tensors"]}
    assert {n: a for n, a in aliased.items() if a} == LLAMA_ALIASES
    assert all(t.pop("alias_of") is None for t in plain["tensors"])
    # An alias is no finding of its own: the top list names each tensor once.
    assert not set(deduped["top"]) & set(LLAMA_ALIASES)
    plain["top"] = [n for n in plain["top"] if n not in LLAMA_ALIASES]
    deduped["top"] = deduped["top"][: len(plain["top"])]
    assert deduped == plain
