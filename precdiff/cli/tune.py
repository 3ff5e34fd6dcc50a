"""``precdiff kernels tune``: tune the batch-invariant GEMM tile tables for this GPU."""

from __future__ import annotations

import typer

from precdiff.cli._app import app, command
from precdiff.errors import InputError

kernels_app = typer.Typer(
    help="Batch-invariant kernels: tune their GEMM tables for this GPU.", no_args_is_help=True
)
app.add_typer(kernels_app, name="kernels")


def _shapes(text: str | None) -> tuple[tuple[int, int], ...] | None:
    """``4096x4096,4096x14336`` -> ((4096, 4096), (4096, 14336)); a model source -> its Linear shapes."""
    if text is None:
        return None
    pairs = [part.strip().lower().split("x") for part in text.split(",") if part.strip()]
    if pairs and all(len(p) == 2 and p[0].isdigit() and p[1].isdigit() for p in pairs):
        return tuple((int(k), int(n)) for k, n in pairs)
    from precdiff.capture.configs import load_config
    from precdiff.kernels.tune import shapes_from_config

    return shapes_from_config(load_config(text))


@command("tune", parent=kernels_app)
def tune_command(
    dtypes: str = typer.Option(
        "bf16", "--dtypes", help="Tables to tune: bf16, fp16, fp32 (comma-separated)."
    ),
    shapes: str | None = typer.Option(
        None,
        "--shapes",
        help="K×N GEMM shapes (4096x4096,4096x14336) or a model (directory or tiny:<arch>) whose Linear "
        "shapes to tune; default: Llama-3-8B's.",
    ),
    ms: str | None = typer.Option(None, "--ms", help="Row counts M to time (default 1,8,32,…,4096)."),
    out: str | None = typer.Option(
        None, "--out", help="Write the table here instead of the user cache (the mode reads the cache)."
    ),
) -> int:
    """Bit-check every tile candidate against the reference on this GPU, time the identical ones against
    cuBLAS, and write the fastest per (M, K, N) to the user cache, where batch-invariant mode uses them."""
    from precdiff.kernels.tune import TuneOptions, tune
    from precdiff.report.kernels import print_line, print_tune_result

    try:
        row_counts = tuple(int(v) for v in ms.split(",")) if ms else None
    except ValueError:
        raise InputError(f"--ms takes positive integers separated by commas, got {ms!r}") from None
    defaults = TuneOptions()
    options = TuneOptions(
        dtypes=tuple(d.strip() for d in dtypes.split(",") if d.strip()),
        shapes=_shapes(shapes) or defaults.shapes,
        ms=row_counts or defaults.ms,
        out=out,
    )
    print_tune_result(tune(options, progress=print_line))
    return 0
