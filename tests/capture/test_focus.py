"""Focus capture: summary everywhere, full tensors where a comparison points (summary → focus workflow)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from precdiff.capture import capture
from precdiff.capture.focus import focus_from_report
from precdiff.compare import CompareOptions
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.errors import InputError
from precdiff.store import open_capture

PROMPT = "A summary comparison points at a layer; a focus capture then stores that layer in full."
FAULTY = "model.layers.2.self_attn.k_proj"


def _planted(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    weights = load_file(target / "model.safetensors")
    weight = weights[f"{FAULTY}.weight"].float()
    noise = (
        torch.randn(weight.shape, generator=torch.Generator().manual_seed(3)) * weight.pow(2).mean().sqrt()
    )
    weights[f"{FAULTY}.weight"] = (weight + 0.3 * noise).to(weights[f"{FAULTY}.weight"].dtype)
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_summary_then_focus_drills_down_to_the_module(
    tmp_path: Path, tiny_dir: Callable[[str], Path]
) -> None:
    reference, planted = str(tiny_dir("llama")), str(_planted(tiny_dir("llama"), tmp_path / "planted"))
    spec = CaptureInput(prompt=PROMPT)
    summary = CaptureOptions(device="cpu", summary=True, max_new_tokens=0)
    capture(reference, tmp_path / "a_summary.h5", spec, summary)
    capture(
        planted, tmp_path / "b_summary.h5", CaptureInput(tokens_from=str(tmp_path / "a_summary.h5")), summary
    )
    first = compare(tmp_path / "a_summary.h5", tmp_path / "b_summary.h5", options=CompareOptions(force=True))
    assert not first and first.verdict.layer == 2, first.verdict
    report = tmp_path / "summary.json"
    report.write_text(json.dumps(first.to_dict()))

    focus = focus_from_report(report)
    assert focus == (r"^model\.layers\.2([.\[:#/]|$)", r"^model\.layers\.1(\[0\])?$")
    options = CaptureOptions(device="cpu", focus=focus, max_new_tokens=0)
    capture(
        reference, tmp_path / "a_focus.h5", CaptureInput(tokens_from=str(tmp_path / "a_summary.h5")), options
    )
    capture(
        planted, tmp_path / "b_focus.h5", CaptureInput(tokens_from=str(tmp_path / "a_summary.h5")), options
    )
    with open_capture(tmp_path / "a_focus.h5") as cap:
        stored = {i.name for i in cap.tensor_infos() if i.stored}
        assert (
            cap.manifest is not None and cap.manifest.capture.focus == focus and cap.manifest.capture.summary
        )
    assert stored and all(
        n.startswith("model.layers.2") or n.startswith("model.layers.1[") or n == "model.layers.1"
        for n in stored
    )
    assert f"{FAULTY}" in stored and "model.layers.3.mlp" not in stored

    drilled = compare(tmp_path / "a_focus.h5", tmp_path / "b_focus.h5", options=CompareOptions(force=True))
    assert not drilled and drilled.verdict.layer == 2 and drilled.verdict.module == FAULTY, drilled.verdict


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "cannot read a compare JSON report"),
        ('{"a": 1}', "no 'verdict' object"),
        ('{"verdict": {"status": "within_noise", "module": null}}', "the verdict names no module"),
    ],
)
def test_focus_from_a_report_that_points_nowhere_is_an_input_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        focus_from_report(path)


def test_focus_outside_the_layers_keeps_the_module_itself(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"verdict": {"status": "diverged", "layer": None, "module": "lm_head"}}))
    assert focus_from_report(path) == (r"^lm_head([.\[:#/]|$)",)
