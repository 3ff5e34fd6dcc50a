"""``precdiff capture`` / ``tiny`` from the command line: success paths and one-line errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import precdiff.cli.capture  # noqa: F401  (registers the commands)
from precdiff.cli._app import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_capture_and_tiny_save(tmp_path: Path) -> None:
    code, out = run("tiny", "save", "qwen2", str(tmp_path / "m"), "--set", "num_hidden_layers=2")
    assert code == 0 and "wrote" in out
    code, out = run(
        "capture",
        str(tmp_path / "m"),
        "--out",
        str(tmp_path / "a.h5"),
        "--prompt",
        "hi",
        "--device",
        "cpu",
        "--max-new-tokens",
        "2",
    )
    assert code == 0, out
    assert "captured" in out and (tmp_path / "a.h5").exists()
    code, out = run("tiny", "list")
    assert code == 0 and "tiny:mixtral" in out


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["tiny:llama", "--prompt", "x", "--device", "tpu"],
            "InputError: unknown device 'tpu'; use --device auto|cpu|cuda[:i]|npu[:i] / device='cuda:0'",
        ),
        (
            ["tiny:llama", "--prompt", "x", "--device", "npu"],
            "DeviceUnavailableError: device 'npu' needs torch_npu, which is not installed; install torch_npu (and "
            "CANN) matching your torch, or use --device cpu|cuda / device='cpu'",
        ),
        (
            ["tiny:llama", "--prompt", "x", "--device", "cuda"],
            "DeviceUnavailableError: device 'cuda' requested but torch sees no CUDA GPU (CPU build or no driver); "
            "use --device cpu / device='cpu', or install a CUDA build of torch",
        ),
        (
            ["tiny:gpt9", "--prompt", "x"],
            "ModelLoadError: unknown tiny model 'tiny:gpt9'; choose one of: "
            "tiny:llama, tiny:mistral, tiny:qwen2, tiny:qwen3, tiny:gemma2, tiny:gemma3, tiny:phi3, tiny:qwen2_moe, "
            "tiny:qwen3_moe, tiny:mixtral",
        ),
        (
            ["tiny:llama", "--input-ids", "1,x"],
            "InputError: --input-ids must be integers separated by commas, got '1,x'",
        ),
        (
            ["tiny:llama", "--prompt", "x", "--dtype", "int4"],
            "InputError: unknown dtype 'int4'; use --dtype float32|bfloat16|float16|float64 / dtype='bfloat16'",
        ),
        (
            ["tiny:llama", "--prompt", "x", "--kernels", "fast"],
            "InputError: unknown --kernels 'fast'; use one of: standard, batch-invariant",
        ),
    ],
)
def test_capture_errors_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    if "--device" in args and "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    code, out = run("capture", *args, "--out", str(tmp_path / "x.h5"))
    assert code == 2
    assert one_line_error(out) == expected


def test_model_directory_errors(tmp_path: Path) -> None:
    code, out = run("capture", str(tmp_path / "nope"), "--out", str(tmp_path / "x.h5"), "--prompt", "x")
    assert code == 2
    assert one_line_error(out) == (
        f"ModelLoadError: model '{tmp_path / 'nope'}' is neither a local directory nor "
        "tiny:<arch>; pass a Hugging Face model directory (config.json + *.safetensors) "
        "or e.g. tiny:llama"
    )
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"not unpickled")
    code, out = run("capture", str(pickled), "--out", str(tmp_path / "x.h5"), "--prompt", "x")
    assert code == 2
    assert one_line_error(out) == (
        f"ModelLoadError: {pickled} has no *.safetensors weights (found "
        "pytorch_model.bin: precdiff does not unpickle weight files; convert them to "
        "safetensors first)"
    )


def test_tokens_from_missing_and_bad_template_kwarg(tmp_path: Path) -> None:
    code, out = run(
        "capture", "tiny:llama", "--out", str(tmp_path / "x.h5"), "--tokens-from", str(tmp_path / "a.h5")
    )
    assert code == 2
    assert one_line_error(out) == f"InputError: capture file {tmp_path / 'a.h5'} does not exist"
    code, out = run(
        "capture",
        "tiny:llama",
        "--out",
        str(tmp_path / "x.h5"),
        "--prompt",
        "x",
        "--template-kwarg",
        "novalue",
    )
    assert code == 2
    assert one_line_error(out) == (
        "InputError: --template-kwarg expects KEY=VALUE (e.g. --template-kwarg "
        "enable_thinking=false), got 'novalue'"
    )


def test_output_folder_must_exist(tmp_path: Path) -> None:
    code, out = run("capture", "tiny:llama", "--out", str(tmp_path / "no" / "x.h5"), "--input-ids", "1")
    assert code == 2
    assert one_line_error(out) == (
        f"InputError: output folder {tmp_path / 'no'} does not exist; create it or pick another --out"
    )


def test_demo_runs_and_is_within_noise(tmp_path: Path) -> None:
    import json

    code, out = run("demo", "--out-dir", str(tmp_path / "demo"))
    assert code == 0, out
    assert "WITHIN_NOISE" in out
    report = json.loads((tmp_path / "demo" / "compare.json").read_text())
    assert report["verdict"]["status"] == "within_noise"
    assert (tmp_path / "demo" / "reference_cpu_float32.h5").exists()


def test_out_is_a_directory(tmp_path: Path) -> None:
    code, out = run("capture", "tiny:llama", "--out", str(tmp_path), "--input-ids", "1")
    assert code == 2
    assert (
        one_line_error(out)
        == f"InputError: --out {tmp_path} is a directory; give a file name such as {tmp_path / 'run.h5'}"
    )


def test_a_bug_exits_3_not_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from precdiff.capture import runner

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(runner, "resolve_device", broken)
    code, out = run("capture", "tiny:llama", "--out", str(tmp_path / "x.h5"), "--input-ids", "1")
    assert code == 3
    assert "ZeroDivisionError: planted bug" in out and "this is a bug in precdiff" in out
