"""``precdiff invariance`` and ``precdiff determinism``: is a sequence's output independent of its batch?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from precdiff.cli._app import EXIT_DIVERGED, EXIT_OK, QUIET, command, wrote

_MODEL = typer.Argument(..., help="Local Hugging Face model directory, a .gguf file, or tiny:<arch>.")
_DEVICE = typer.Option(None, "--device", help="auto|cpu|cuda[:i]|npu[:i] (default auto).")
_DTYPE = typer.Option(None, "--dtype", help="float32|bfloat16|float16 (default float32).")
_KERNELS = typer.Option(None, "--kernels", help="standard|batch-invariant (default standard).")
_SEED = typer.Option(None, "--seed", help="Seed of the companions (and tiny-model weights; default 0).")
_PROMPT = typer.Option(None, "--prompt", help="Probe text (default: a fixed English sentence).")
_MESSAGES = typer.Option(
    None, "--messages", help="OpenAI-style messages JSON, rendered with the chat template, as the probe."
)
_IDS = typer.Option(None, "--input-ids", help="Probe token ids, e.g. 1,2,3 (no tokenizer needed).")
_TRUST = typer.Option(False, "--trust-remote-code", help="Allow model code from the directory.")
_JSON = typer.Option(None, "--json", help="Also write the report as JSON (docs/invariance-json.md).")
_HTML = typer.Option(None, "--html", help="Also write a self-contained HTML report (docs/html-report.md).")


def _inputs(model: str) -> tuple[str, ...]:
    """The model directory or file, which a --json / --html report must not write into or over."""
    return () if model.startswith("tiny:") else (model,)


def _check_outputs(model: str, json_out: Path | None, html_out: Path | None) -> None:
    """Refuse a bad --json / --html path before the (long) run, not after it."""
    from precdiff.report.output import check_output_path

    for path, flag in ((json_out, "--json"), (html_out, "--html")):
        if path is not None:
            check_output_path(path, inputs=_inputs(model), flag=flag)


def _finish(
    document: dict[str, Any], ok: bool, model: str, json_out: Path | None, html_out: Path | None
) -> int:
    """The output tail both commands share: the --json and --html files, then the exit code."""
    from precdiff.report.html import write_html
    from precdiff.report.output import write_json

    if json_out is not None:
        wrote(write_json(document, json_out, inputs=_inputs(model)))
    if html_out is not None:
        wrote(write_html(document, html_out, inputs=_inputs(model)))
    return EXIT_OK if ok else EXIT_DIVERGED


def _ids(text: str | None) -> tuple[int, ...] | None:
    from precdiff.capture.inputs import parse_input_ids

    return parse_input_ids(text) if text is not None else None


@command("invariance")
def invariance_command(
    model: str = _MODEL,
    device: str | None = _DEVICE,
    dtype: str | None = _DTYPE,
    kernels: str | None = _KERNELS,
    batch_sizes: str | None = typer.Option(None, "--batch-sizes", help="Comma-separated (default 1,2,8,32)."),
    padding: str | None = typer.Option(None, "--padding", help="none|left|right (default none)."),
    level: str | None = typer.Option(None, "--level", help="module|op (default module)."),
    decode_positions: int | None = typer.Option(
        None, "--decode-positions", help="Trailing positions checked as decode steps (default 4)."
    ),
    seed: int | None = _SEED,
    prompt: str | None = _PROMPT,
    messages: Path | None = _MESSAGES,
    input_ids: str | None = _IDS,
    trust_remote_code: bool = _TRUST,
    json_out: Path | None = _JSON,
    html_out: Path | None = _HTML,
    quiet: bool = QUIET,
) -> int:
    """Run a probe alone and inside batches; report per module (or op) whether its tensors are bitwise
    identical, the first that is not, and prefill-vs-decode consistency. Exit 0 invariant, 1 not."""
    from precdiff.invariance import InvarianceOptions, check_invariance, parse_batch_sizes
    from precdiff.report.invariance import print_invariance

    _check_outputs(model, json_out, html_out)
    options = InvarianceOptions.from_cli(
        device=device,
        dtype=dtype,
        kernels=kernels,
        seed=seed,
        prompt=prompt,
        messages=str(messages) if messages is not None else None,
        input_ids=_ids(input_ids),
        trust_remote_code=trust_remote_code or None,
        padding=padding,
        level=level,
        decode_positions=decode_positions,
        batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes is not None else None,
    )
    report = check_invariance(model, options)
    print_invariance(report)
    return _finish(report.to_dict(), bool(report), model, json_out, html_out)


@command("determinism")
def determinism_command(
    model: str = _MODEL,
    runs: int | None = typer.Option(None, "--runs", help="Number of randomly batched runs (default 100)."),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", help="Greedy tokens per run (default 32)."
    ),
    max_companions: int | None = typer.Option(
        None, "--max-companions", help="Most random companions per batch (default 31)."
    ),
    device: str | None = _DEVICE,
    dtype: str | None = _DTYPE,
    kernels: str | None = _KERNELS,
    seed: int | None = _SEED,
    prompt: str | None = _PROMPT,
    messages: Path | None = _MESSAGES,
    input_ids: str | None = _IDS,
    trust_remote_code: bool = _TRUST,
    json_out: Path | None = _JSON,
    html_out: Path | None = _HTML,
    quiet: bool = QUIET,
) -> int:
    """Greedy-generate the probe inside RUNS random batches; count distinct completions.
    Exit 0 for exactly one, 1 for more."""
    from precdiff.invariance import DeterminismOptions, check_determinism
    from precdiff.report.invariance import print_determinism

    _check_outputs(model, json_out, html_out)
    options = DeterminismOptions.from_cli(
        device=device,
        dtype=dtype,
        kernels=kernels,
        seed=seed,
        prompt=prompt,
        messages=str(messages) if messages is not None else None,
        input_ids=_ids(input_ids),
        trust_remote_code=trust_remote_code or None,
        runs=runs,
        max_new_tokens=max_new_tokens,
        max_companions=max_companions,
    )
    report = check_determinism(model, options)
    print_determinism(report)
    return _finish(report.to_dict(), bool(report), model, json_out, html_out)
