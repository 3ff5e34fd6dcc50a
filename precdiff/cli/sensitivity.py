"""``precdiff sensitivity``: which layers must stay in 16-bit float under weight-only quantization."""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import EXIT_DIVERGED, EXIT_OK, command


@command("sensitivity")
def sensitivity_command(
    model: str = typer.Argument(..., help="Local Hugging Face model directory, or tiny:<arch>."),
    calib: Path = typer.Option(
        ..., "--calib", help="Calibration prompts: one per line, text or chat JSONL (docs/sensitivity.md)."
    ),
    bits: int | None = typer.Option(None, "--bits", help="8 or 4 (default 8)."),
    granularity: str | None = typer.Option(
        None, "--granularity", help="tensor|channel|group:N (default channel)."
    ),
    symmetric: bool | None = typer.Option(
        None,
        "--symmetric/--asymmetric",
        help="Symmetric or asymmetric (zero point) integers (default symmetric).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write sensitive_layers.json: one record per layer, flag bf16 or int8/int4."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the full report as JSON."),
    kl_threshold: float | None = typer.Option(
        None, "--kl-threshold", help="Flag when KL exceeds (default 0.02)."
    ),
    r_threshold: float | None = typer.Option(
        None, "--r-threshold", help="Flag when the weight's R exceeds (default 15)."
    ),
    energy_threshold: float | None = typer.Option(
        None, "--energy-threshold", help="Flag when σ1/Σσi exceeds (default 0.42)."
    ),
    budget: float | None = typer.Option(
        None,
        "--budget",
        help="Instead of thresholds, flag this fraction of layers by combined rank (e.g. 0.1).",
    ),
    bins: int | None = typer.Option(None, "--bins", help="Histogram bins per output channel (default 64)."),
    smoothing: float | None = typer.Option(
        None, "--smoothing", help="Pseudo-count added to every histogram bin (default 1)."
    ),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Tokens kept per prompt (default 128)."),
    max_prompts: int | None = typer.Option(
        None, "--max-prompts", help="Calibration prompts used (default: all not held out)."
    ),
    verify: bool = typer.Option(False, "--verify", help="Compare float, all-quantized and mixed models."),
    holdout: int | None = typer.Option(
        None, "--holdout", help="With --verify: prompts from the end of --calib kept for it (default 16)."
    ),
    new_tokens: int | None = typer.Option(
        None, "--new-tokens", help="With --verify: greedy tokens per prompt (default 16)."
    ),
    device: str | None = typer.Option(None, "--device", help="auto|cpu|cuda[:i]|npu[:i] (default auto)."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32|bfloat16|float16 (default float32)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of tiny-model weights (default 0)."),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow model code from the directory."
    ),
) -> int:
    """Fake-quantize every Linear and embedding weight, measure each layer's output on the calibration
    prompts (KL, R, energy ratio, skewness) and flag the layers that must stay in float.
    Exit 0 when no layer is flagged, 1 when some are."""
    from precdiff.report.sensitivity import check_outputs, print_report, progress_bar, write_json
    from precdiff.sensitivity import SensitivityOptions, find_sensitive_layers

    options = SensitivityOptions.from_cli(
        device=device,
        dtype=dtype,
        bits=bits,
        granularity=granularity,
        symmetric=symmetric,
        kl_threshold=kl_threshold,
        r_threshold=r_threshold,
        energy_threshold=energy_threshold,
        budget=budget,
        bins=bins,
        smoothing=smoothing,
        max_tokens=max_tokens,
        max_prompts=max_prompts,
        verify=verify or None,
        holdout=holdout,
        new_tokens=new_tokens,
        seed=seed,
        trust_remote_code=trust_remote_code or None,
    )
    check_outputs((out, json_out), (calib, Path(model)))
    with progress_bar() as progress:
        report = find_sensitive_layers(model, calib, options, progress=progress)
    print_report(report)
    if out is not None:
        write_json(report.sensitive_layers(), out)
    if json_out is not None:
        write_json(report.to_dict(), json_out)
    return EXIT_OK if report else EXIT_DIVERGED
