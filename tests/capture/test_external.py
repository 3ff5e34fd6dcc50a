"""hooks/sitecustomize.py: a program precdiff does not launch writes a capture of its first forward."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from precdiff.store import open_capture

HOOKS = Path(__file__).parents[2] / "hooks"

PROGRAM = textwrap.dedent(
    """
    import torch, transformers
    from precdiff.capture.tiny import build_config
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(build_config("qwen2")).eval()
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7, 8]]))   # captured
        model(input_ids=torch.tensor([[9, 10]]))        # not captured: only the first call
    """
)


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HOOKS), os.environ.get("PYTHONPATH", "")]), **env
    )
    return subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_first_forward_of_an_unmodified_program_is_captured(tmp_path: Path) -> None:
    out = tmp_path / "engine.h5"
    result = run(tmp_path, PRECDIFF_CAPTURE=str(out))
    assert result.returncode == 0, result.stderr
    assert "precdiff: captured" in result.stderr
    with open_capture(out) as cap:
        assert cap.complete and cap.input_ids == [5, 6, 7, 8]
        assert cap.manifest.input.source == "external"
        assert "model.layers.1" in cap.tensor_names()
        assert cap.info("model.layers.1").shape == (1, 4, 64)
        assert cap.prompt_logprobs is not None and cap.prompt_logprobs.ids.shape[0] == 4


def test_without_the_variable_nothing_is_written(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


FAILING_THEN_OK = textwrap.dedent(
    """
    import torch, transformers
    from precdiff.capture.tiny import build_config
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(build_config("qwen2_moe")).eval()
    with torch.no_grad():
        try:
            model(input_ids=torch.tensor([[1, 2, 99999]]))   # raises: out of the vocabulary
        except IndexError:
            pass
        hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
        assert hooks == 0, hooks
        model(input_ids=torch.tensor([[5, 6]]))   # must not be written into the capture
    """
)


def test_failed_forward_leaves_partial_and_no_hooks(tmp_path: Path) -> None:
    out = tmp_path / "engine.h5"
    environment = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HOOKS), os.environ.get("PYTHONPATH", "")]),
        PRECDIFF_CAPTURE=str(out),
    )
    result = subprocess.run(
        [sys.executable, "-c", FAILING_THEN_OK],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "the captured forward failed" in result.stderr
    assert not out.exists()
    with open_capture(str(out) + ".partial") as cap:
        assert not cap.complete and cap.input_ids == [1, 2, 99999]


def test_moe_token_buffers_are_kept_whole(tmp_path: Path) -> None:
    program = PROGRAM.replace('"qwen2"', '"qwen2_moe"')
    out = tmp_path / "moe.h5"
    environment = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HOOKS), os.environ.get("PYTHONPATH", "")]),
        PRECDIFF_CAPTURE=str(out),
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with open_capture(out) as cap:
        assert cap.info("model.layers.0.mlp.experts").shape == (4, 64)  # [tokens, hidden], not cut to 1
        assert cap.manifest.model.weights_sha256 is None
