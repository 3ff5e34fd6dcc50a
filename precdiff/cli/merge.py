"""``precdiff merge``: one ordinary capture from the rank files of a tensor-parallel capture."""

from __future__ import annotations

from pathlib import Path

import typer

from precdiff.cli._app import command


@command("merge")
def merge_command(
    ranks: list[Path] = typer.Argument(..., help="Every RUN.rankR.h5 of one tensor-parallel capture."),
    out: Path = typer.Option(..., "--out", help="The merged capture to write."),
) -> int:
    """Unshard the per-rank files of `capture --tp N` into one capture that compares like any other."""
    from precdiff.report.merge import print_merge_result
    from precdiff.store.merge import merge_ranks

    print_merge_result(merge_ranks(ranks, out))
    return 0
