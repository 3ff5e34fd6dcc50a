"""Tensor-parallel capture on CPU (gloo): torchrun with 2 ranks, merge, compare with the unsharded run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from precdiff.capture import capture, save_tiny
from precdiff.compare import CompareOptions
from precdiff.compare.compare import compare
from precdiff.config import CaptureInput, CaptureOptions
from precdiff.errors import InputError
from precdiff.store import open_capture
from precdiff.store.merge import merge_ranks

ROOT = Path(__file__).parents[2]
PROMPT = "Each rank holds a shard of every Linear layer"
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")


def torchrun_capture(model: str, out: Path) -> list[Path]:
    """``torchrun --nproc-per-node 2 -m precdiff capture MODEL --tp 2``; returns the rank files."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "precdiff", "capture", model, "--tp", "2", "--device", "cpu", "--out", str(out)]
    command += ["--prompt", PROMPT, "--max-new-tokens", "4"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ranks = [out.with_name(f"{out.stem}.rank{r}.h5") for r in range(2)]
    assert all(p.is_file() for p in ranks)
    return ranks


@pytest.mark.parametrize("arch", ["llama", "qwen2_moe"])
def test_tp2_merged_matches_the_unsharded_capture(tmp_path: Path, arch: str) -> None:
    ranks = torchrun_capture(f"tiny:{arch}", tmp_path / "tp.h5")
    merged = merge_ranks(ranks, tmp_path / "tp.h5")
    assert merged.ranks == 2 and merged.sharded > 0 and merged.replica_mismatches == ()
    capture(
        f"tiny:{arch}",
        tmp_path / "one.h5",
        CaptureInput(tokens_from=str(ranks[0])),
        CaptureOptions(device="cpu", max_new_tokens=4),
    )
    with open_capture(tmp_path / "one.h5") as one, open_capture(tmp_path / "tp.h5") as tp:
        assert one.tensor_names() == tp.tensor_names()
        assert [one.info(n).shape for n in one.tensor_names()] == [
            tp.info(n).shape for n in tp.tensor_names()
        ]
    result = compare(tmp_path / "one.h5", tmp_path / "tp.h5")
    assert result, result.verdict  # within fp32 noise: only the all-reduce's summation order differs
    assert (
        result.verdict.status in ("match", "within_noise")
        and max(t.rel_l2 or 0.0 for t in result.tensors) < 1e-5
    )


def test_a_fault_in_one_ranks_shard_is_localized(tmp_path: Path) -> None:
    clean = save_tiny("llama", tmp_path / "clean")
    faulty = save_tiny("llama", tmp_path / "faulty")
    weights = load_file(faulty / "model.safetensors")
    name = "model.layers.2.self_attn.q_proj.weight"
    weight = weights[name].clone()
    half = weight.shape[0] // 2  # colwise: rank 1 holds the second half of the output features
    weight[half:] += (
        0.3
        * weight[half:].std()
        * torch.randn(weight[half:].shape, generator=torch.Generator().manual_seed(5))
    )
    weights[name] = weight
    save_file(weights, faulty / "model.safetensors", metadata={"format": "pt"})
    ranks = torchrun_capture(str(faulty), tmp_path / "tp.h5")
    merge_ranks(ranks, tmp_path / "tp.h5")
    capture(
        str(clean),
        tmp_path / "one.h5",
        CaptureInput(tokens_from=str(ranks[0])),
        CaptureOptions(device="cpu", max_new_tokens=4),
    )
    result = compare(tmp_path / "one.h5", tmp_path / "tp.h5", options=CompareOptions(force=True))
    assert (
        not result
        and result.verdict.layer == 2
        and result.verdict.module == "model.layers.2.self_attn.q_proj"
    )


def test_merge_refuses_incomplete_or_mixed_rank_sets(tmp_path: Path, llama_capture: Path) -> None:
    with pytest.raises(InputError, match="not one rank of a tensor-parallel capture"):
        merge_ranks([llama_capture], tmp_path / "m.h5")
    with pytest.raises(InputError, match="is one of the rank files"):
        merge_ranks([llama_capture], llama_capture)


def test_tp_outside_torchrun_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--tp 2 needs 2 processes"):
        capture(
            "tiny:llama", tmp_path / "x.h5", CaptureInput(prompt="hi"), CaptureOptions(device="cpu", tp=2)
        )


def test_merge_cli_errors_are_one_line(tmp_path: Path, llama_capture: Path) -> None:
    from typer.testing import CliRunner

    from precdiff.cli._app import app, register_commands

    register_commands()
    result = CliRunner().invoke(app, ["merge", str(llama_capture), "--out", str(tmp_path / "m.h5")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "is not one rank of a tensor-parallel capture" in result.output
    assert not (tmp_path / "m.h5").exists()
