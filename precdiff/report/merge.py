"""Console output of ``precdiff merge``."""

from __future__ import annotations

from rich.markup import escape

from precdiff.report.terminal import make_console
from precdiff.store.merge import MergeResult


def print_merge_result(result: MergeResult) -> None:
    console = make_console()
    console.print(
        f"merged {result.ranks} ranks into {escape(str(result.path))}: {result.tensors} tensors, "
        f"{result.sharded} of them concatenated from shards"
    )
    if result.replica_mismatches:
        shown = ", ".join(result.replica_mismatches[:5])
        console.print(
            f"[yellow]{len(result.replica_mismatches)} replicated tensors differ between ranks[/yellow] "
            f"(rank 0's copy kept): {escape(shown)}{' …' if len(result.replica_mismatches) > 5 else ''}"
        )
