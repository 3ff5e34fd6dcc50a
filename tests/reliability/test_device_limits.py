"""Out of memory and missing kernels are conditions of the machine (exit 2, one line naming the size
and what to lower); every other RuntimeError is a bug and keeps its type and traceback (exit 3)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from precdiff.cli._app import register_commands
from precdiff.devices import device_limits, first_line
from precdiff.errors import DeviceLimitError

app = register_commands()


@pytest.mark.parametrize(
    "exc, condition",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "ran out of memory"),
        (
            RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes"),
            "out of memory",
        ),
        (NotImplementedError("aten::foo is not implemented for 'BFloat16'"), "has no kernel"),
        (
            RuntimeError("CUDA error: no kernel image is available for execution on the device"),
            "has no kernel",
        ),
    ],
)
def test_device_conditions_become_one_line_errors(exc: BaseException, condition: str) -> None:
    limits = device_limits("a batch of 9 sequences", "lower --batch-sizes / batch_sizes=")
    with pytest.raises(DeviceLimitError) as info, limits:
        raise exc
    message = str(info.value)
    assert condition in message and "a batch of 9 sequences" in message
    assert message.endswith("; lower --batch-sizes / batch_sizes=")


@pytest.mark.parametrize("exc", [RuntimeError("shape '[2, 3]' is invalid"), AttributeError("no .logits")])
def test_other_errors_stay_bugs(exc: BaseException) -> None:
    with pytest.raises(type(exc)), device_limits("anything", "nothing to lower"):
        raise exc


def test_first_line_of_an_empty_message() -> None:
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(RuntimeError("\n\n  second\nthird")) == "second"


def test_invariance_out_of_memory_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from precdiff.invariance import probe

    real_forward = probe._forward
    calls = {"n": 0}

    def forward_then_oom(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:  # the probe alone runs; the first batch does not fit
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(probe, "_forward", forward_then_oom)
    result = CliRunner().invoke(
        app,
        ["invariance", "tiny:llama", "--device", "cpu", "--batch-sizes", "1,2", "-q"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.strip() == (
        "DeviceLimitError: the device ran out of memory running a batch of 2 sequences (CUDA out of memory. "
        "Tried to allocate 2.00 GiB); lower --batch-sizes / batch_sizes="
    )
