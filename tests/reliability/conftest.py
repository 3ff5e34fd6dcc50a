"""Shared, session-wide material of the reliability corpus: two tiny captures, damaged copies of
them, a tiny model directory and broken variants of it. Built once; tests only read it."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from precdiff.store import format as fmt


@dataclass(frozen=True)
class World:
    root: Path
    a: Path  # complete float32 capture of tiny:llama, ids 1..6, 2 generated tokens
    b: Path  # the same run again (compares as MATCH)
    summary: Path  # --summary capture of the same input
    model: Path  # tiny llama directory
    messages: Path  # OpenAI-style messages JSON
    file: Path  # a regular file (outputs "under" it must fail)

    def broken_model(self, name: str) -> Path:
        return self.root / "models" / name

    def damaged(self, name: str) -> Path:
        return self.root / "damaged" / f"{name}.h5"


def _copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _broken_models(model: Path, root: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(model / "model.safetensors")

    def rewrite(name: str, tensors: dict[str, object]) -> None:
        save_file(tensors, _copy_model(model, root / name) / "model.safetensors", metadata={"format": "pt"})

    missing = dict(weights)
    missing.pop("model.layers.0.mlp.down_proj.weight")
    rewrite("missing_weight", missing)
    rewrite("unexpected_weight", {**weights, "model.extra.weight": weights["model.norm.weight"].clone()})
    key = "model.layers.0.mlp.down_proj.weight"
    rewrite("wrong_shape", {**weights, key: weights[key][:, :-1].contiguous()})
    data = (model / "model.safetensors").read_bytes()
    (_copy_model(model, root / "truncated") / "model.safetensors").write_bytes(data[: len(data) // 2])
    random_bytes = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (_copy_model(model, root / "random_bytes") / "model.safetensors").write_bytes(random_bytes)
    (_copy_model(model, root / "empty_weights") / "model.safetensors").write_bytes(b"")
    for name, change in (
        ("vocab_zero", {"vocab_size": 0}),
        ("hidden_string", {"hidden_size": "abc"}),
        ("auto_map", {"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}),
    ):
        target = _copy_model(model, root / name)
        config = json.loads((target / "config.json").read_text())
        config.update(change)
        (target / "config.json").write_text(json.dumps(config))
    (_copy_model(model, root / "bad_config_json") / "config.json").write_text("{not json")
    no_config = _copy_model(model, root / "no_config")
    (no_config / "config.json").unlink()
    pickled = _copy_model(model, root / "pickled_only")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")


def _damaged_captures(a: Path, root: Path) -> None:
    def copy(name: str) -> Path:
        return Path(shutil.copy(a, root / f"{name}.h5"))

    with h5py.File(copy("no_input_ids"), "r+") as handle:
        del handle[fmt.INPUT_IDS]
    with h5py.File(copy("tensor_shape"), "r+") as handle:
        key = fmt.tensor_key(0)
        attrs = dict(handle[key].attrs)
        del handle[key]
        handle.create_dataset(key, data=np.zeros((2, 2), dtype=np.float32))
        handle[key].attrs.update(attrs)
    with h5py.File(copy("logprobs_shape"), "r+") as handle:
        ids = handle[fmt.PROMPT_TOPK_IDS][()]
        del handle[fmt.PROMPT_TOPK_IDS]
        handle.create_dataset(fmt.PROMPT_TOPK_IDS, data=ids[:-1])
    with h5py.File(copy("generation_shape"), "r+") as handle:
        margin = handle[fmt.GENERATION_MARGIN][()]
        del handle[fmt.GENERATION_MARGIN]
        handle.create_dataset(fmt.GENERATION_MARGIN, data=np.concatenate([margin, margin]))
    with h5py.File(copy("bad_dtype_code"), "r+") as handle:
        table = handle[fmt.TENSOR_INDEX]
        row = table[0]
        row[fmt.T_DTYPE] = "Q9"
        table[0] = row
    data = a.read_bytes()
    (root / "truncated.h5").write_bytes(data[: len(data) // 3])
    (root / "random.h5").write_bytes(
        np.random.default_rng(1).integers(0, 256, 9000, dtype=np.uint8).tobytes()
    )
    (root / "text.h5").write_text("not a capture\n")
    with h5py.File(root / "foreign.h5", "w") as handle:
        handle["x"] = np.zeros(3)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from precdiff.capture import capture, save_tiny
    from precdiff.config import CaptureInput, CaptureOptions

    os.environ["HF_HUB_OFFLINE"] = "1"
    root = tmp_path_factory.mktemp("reliability")
    spec = CaptureInput(input_ids=(1, 2, 3, 4, 5, 6))
    options = CaptureOptions(device="cpu", max_new_tokens=2)
    a, b, summary = root / "a.h5", root / "b.h5", root / "summary.h5"
    capture("tiny:llama", a, spec, options)
    capture("tiny:llama", b, spec, options)
    capture("tiny:llama", summary, spec, CaptureOptions(device="cpu", max_new_tokens=2, summary=True))
    model = save_tiny("llama", root / "model")
    (root / "models").mkdir()
    _broken_models(model, root / "models")
    (root / "damaged").mkdir()
    _damaged_captures(a, root / "damaged")
    messages = root / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Hello"}]))
    regular = root / "a_file"
    regular.write_text("I am a file\n")
    for path in root.rglob("*"):  # read-only by convention; a test that writes here is a bug
        if path.is_file():
            path.chmod(0o444)
    return World(root, a, b, summary, model, messages, regular)
