"""``precdiff replay RUN.h5 --tensor NAME``: re-run one captured module call (or aten op) from its captured inputs."""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import EXIT_DIVERGED, EXIT_OK, command, wrote


@command("replay")
def replay_command(
    run: Path = typer.Argument(..., help="Capture written with --save-inputs, or with --level op for an op."),
    tensor: str = typer.Option(
        ...,
        "--tensor",
        help="Captured output, module call, or op output (<module call>/<aten op>#k) to replay.",
    ),
    device: str | None = typer.Option(None, "--device", help="auto|cpu|cuda[:i]|npu[:i] (default auto)."),
    dtype: str | None = typer.Option(None, "--dtype", help="Dtype to replay in (default: the capture's)."),
    kernels: str | None = typer.Option(
        None, "--kernels", help="standard|batch-invariant (default standard)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model directory or tiny:<arch> (default: the one the capture recorded)."
    ),
    emit_repro: Path | None = typer.Option(
        None, "--emit-repro", help="Also write a standalone reproducer (repro.py + safetensors) here."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the result as JSON to this file."),
) -> int:
    """Replay one module or aten op in isolation here and in float64: does it compute differently, or its inputs?

    Exit code 0: the captured output is what its dtype explains; 1: the op computes differently;
    2: usage or input error.
    """
    from precdiff.replay import ReplayOptions, replay
    from precdiff.report.output import check_output_path, write_json
    from precdiff.report.replay import print_replay, replay_to_json

    options = ReplayOptions(
        tensor=tensor,
        device=device or "auto",
        dtype=dtype,
        kernels=kernels or "standard",
        model=model,
        emit_repro=str(emit_repro) if emit_repro is not None else None,
    )
    if json_out is not None:
        check_output_path(json_out, inputs=(run, model))  # before the work: a bad path fails fast
    result = replay(run, options)
    print_replay(result)
    if json_out is not None:
        wrote(write_json(replay_to_json(result), json_out, inputs=(run, model)))
    return EXIT_OK if result else EXIT_DIVERGED
