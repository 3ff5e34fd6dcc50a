"""``precdiff capture``, ``precdiff tiny …`` and ``precdiff demo``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from precdiff.cli._app import EXIT_DIVERGED, EXIT_OK, QUIET, Group, app, command, wrote
from precdiff.config import parse_key_values
from precdiff.errors import InputError

tiny_app = typer.Typer(
    cls=Group, help="Built-in tiny models (seeded random weights, no download).", no_args_is_help=True
)
app.add_typer(tiny_app, name="tiny")


@command("capture")
def capture_command(
    model: str = typer.Argument(
        ...,
        help="Local Hugging Face model directory, a .gguf file (or a directory holding one), or tiny:<arch>.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Capture file to write (RUN.h5)."),
    prompt: str | None = typer.Option(
        None, "--prompt", help="Prompt text (tokenized with the model's tokenizer)."
    ),
    prompt_file: Path | None = typer.Option(None, "--prompt-file", help="File holding the prompt text."),
    messages: Path | None = typer.Option(
        None, "--messages", help="OpenAI-style messages JSON, rendered with the chat template."
    ),
    input_ids: str | None = typer.Option(
        None, "--input-ids", help="Token ids, e.g. 1,2,3 (no tokenizer needed)."
    ),
    tokens_from: Path | None = typer.Option(
        None,
        "--tokens-from",
        help="Reuse the exact token ids of another capture or of an engine response (.json).",
    ),
    template_kwarg: list[str] | None = typer.Option(
        None, "--template-kwarg", help="Chat-template variable KEY=VALUE (with --messages)."
    ),
    device: str | None = typer.Option(None, "--device", help="auto|cpu|cuda[:i]|npu[:i] (default auto)."),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        help="float32|bfloat16|float16|float64 (default float32; float64 = reference run, CPU).",
    ),
    attn_impl: str | None = typer.Option(
        None, "--attn-impl", help="Attention implementation (eager, sdpa, …)."
    ),
    kernels: str | None = typer.Option(
        None, "--kernels", help="standard|batch-invariant (default standard)."
    ),
    deterministic: bool = typer.Option(
        False, "--deterministic", help="Deterministic algorithms, cuBLAS workspace, TF32 off."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed (also selects tiny-model weights; default 0)."
    ),
    summary: bool = typer.Option(False, "--summary", help="Store statistics only, not full tensors."),
    focus: list[str] | None = typer.Option(
        None,
        "--focus",
        help="Store full tensors only for names matching this regex, statistics elsewhere (repeatable).",
    ),
    focus_from: Path | None = typer.Option(
        None,
        "--focus-from",
        help="Focus on the layer a `compare --json` report names, and its input (the summary → focus workflow).",
    ),
    save_inputs: bool = typer.Option(False, "--save-inputs", help="Also capture every module's inputs."),
    level: str | None = typer.Option(
        None, "--level", help="module|op: module outputs, or also every aten op (default module)."
    ),
    all_ops: bool = typer.Option(False, "--all-ops", help="With --level op, also view/metadata ops."),
    include: list[str] | None = typer.Option(
        None, "--include", help="Capture only modules matching this regex (repeatable)."
    ),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", help="Skip modules matching this regex (repeatable)."
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="Logprobs kept per position (default 20)."),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", help="Greedy tokens to generate (default 16)."
    ),
    compress: str | None = typer.Option(
        None, "--compress", help="gzip: lossless compression of tensor data."
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow model code from the directory."
    ),
    tp: int | None = typer.Option(
        None,
        "--tp",
        help="Tensor-parallel ranks: run under `torchrun --nproc-per-node N`; each rank writes RUN.rankR.h5 "
        "(then `precdiff merge`).",
    ),
    quiet: bool = QUIET,
) -> int:
    """Run MODEL on one input and write every module's output, logprobs and generation to one HDF5 file."""
    from precdiff.capture import capture
    from precdiff.capture.focus import focus_from_report
    from precdiff.capture.inputs import parse_input_ids
    from precdiff.config import CaptureInput, CaptureOptions
    from precdiff.report.capture import print_capture_result
    from precdiff.report.output import check_output_path

    model_dir = None if model.startswith("tiny:") else model
    check_output_path(out, inputs=(prompt_file, messages, tokens_from, model_dir), flag="--out")
    spec = CaptureInput(
        prompt=prompt,
        prompt_file=str(prompt_file) if prompt_file else None,
        messages=str(messages) if messages else None,
        input_ids=parse_input_ids(input_ids) if input_ids is not None else None,
        tokens_from=str(tokens_from) if tokens_from else None,
        template_kwargs=parse_key_values(template_kwarg, "--template-kwarg", "enable_thinking=false"),
    )
    options = CaptureOptions.from_cli(
        device=device,
        dtype=dtype,
        attn_implementation=attn_impl,
        kernels=kernels,
        deterministic=deterministic,
        seed=seed,
        summary=summary,
        focus=tuple(focus or ()) + (focus_from_report(focus_from) if focus_from else ()),
        save_inputs=save_inputs,
        level=level,
        all_ops=all_ops,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        top_k=top_k,
        max_new_tokens=max_new_tokens,
        compression=compress,
        trust_remote_code=trust_remote_code,
        tp=tp,
        command_line=("precdiff", *sys.argv[1:]),
    )
    print_capture_result(capture(model, out, spec, options))
    return EXIT_OK


@command("list", parent=tiny_app)
def tiny_list() -> int:
    """List the built-in tiny architectures."""
    from precdiff.capture.tiny import TINY_ARCHS

    for arch, spec in TINY_ARCHS.items():
        typer.echo(f"tiny:{arch}\t{spec.config_class}")
    return EXIT_OK


@command("save", parent=tiny_app)
def tiny_save(
    arch: str = typer.Argument(..., help="Architecture, e.g. llama (see precdiff tiny list)."),
    directory: Path = typer.Argument(..., help="Directory to write the Hugging Face model into."),
    seed: int | None = typer.Option(None, "--seed", help="Weight seed (default 0)."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Config override KEY=VALUE, e.g. hidden_size=2048."
    ),
) -> int:
    """Write a tiny model (optionally reshaped with --set) as a normal Hugging Face directory."""
    from precdiff.capture import save_tiny
    from precdiff.config import DEFAULT_SEED

    path = save_tiny(
        arch,
        directory,
        seed=DEFAULT_SEED if seed is None else seed,
        overrides=parse_key_values(set_, "--set", "hidden_size=2048"),
    )
    typer.echo(f"wrote {path}")
    return EXIT_OK


@command("demo")
def demo_command(
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        "--out-dir",
        help="Folder for the two captures and compare.json (default: a new temporary folder, printed).",
    ),
    quiet: bool = QUIET,
) -> int:
    """Capture tiny:llama on CPU float32 and in a second configuration, compare, print the verdict."""
    import tempfile

    from precdiff.demo import run_demo
    from precdiff.report.console import print_comparison
    from precdiff.report.json_report import comparison_to_json
    from precdiff.report.output import write_json

    folder = Path(tempfile.mkdtemp(prefix="precdiff-demo-")) if out_dir is None else out_dir
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file; give a folder for the demo's captures")
    typer.echo(f"demo files go to {folder}", err=True)
    comparison = run_demo(folder)
    print_comparison(comparison)
    wrote(write_json(comparison_to_json(comparison), folder / "compare.json"))
    return EXIT_OK if comparison else EXIT_DIVERGED
