"""The comparability header's grouping: one line per kind of difference between the two runs.

A standard-vs-batch-invariant comparison differs in ~25 ``kernel_settings.*`` fields; the point is
"kernels: standard vs batch-invariant (triton)". The JSON keeps every field; this only shortens the
console. Reads :class:`~precdiff.compare.results.Difference` objects; computes no numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from precdiff.compare.results import Difference

# Group label -> dotted field prefixes, in display order; fields matching none keep their own line.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dtype", ("dtype",)),
    ("device", ("device",)),
    ("kernels", ("kernels", "kernel_settings")),
    ("attention", ("attn_implementation",)),
    ("versions", ("versions",)),
    ("determinism", ("determinism",)),
    ("tokenizer", ("tokenizer",)),
)


def _matches(field: str, prefixes: tuple[str, ...]) -> bool:
    return any(field == p or field.startswith(p + ".") for p in prefixes)


def _value(differences: Sequence[Difference], field: str, side: str) -> object:
    for d in differences:
        if d.field == field:
            return d.a if side == "a" else d.b
    return None


def _kernels_side(differences: Sequence[Difference], side: str, fallback: object) -> str:
    mode = _value(differences, "kernels", side) or fallback or "?"
    backend = _value(differences, "kernel_settings.backend", side)
    return f"{mode} ({backend})" if backend else str(mode)


def grouped(
    differences: Sequence[Difference], kernels: tuple[str | None, str | None]
) -> list[tuple[str, str]]:
    """(label, "A vs B" summary) per group with a difference; ``kernels``: each side's kernel mode."""
    lines: list[tuple[str, str]] = []
    used: set[str] = set()
    for label, prefixes in GROUPS:
        members = [d for d in differences if _matches(d.field, prefixes)]
        if not members:
            continue
        used.update(d.field for d in members)
        if label == "kernels":
            text = f"{_kernels_side(members, 'a', kernels[0])} vs {_kernels_side(members, 'b', kernels[1])}"
        elif len(members) == 1 and members[0].field in prefixes:
            text = f"{members[0].a} vs {members[0].b}"
        else:
            text = "; ".join(f"{d.field.split('.', 1)[-1]} {d.a} vs {d.b}" for d in members[:4])
            text += f"; … {len(members) - 4} more (see the JSON)" if len(members) > 4 else ""
        lines.append((label, text))
    lines.extend((d.field, f"{d.a} vs {d.b}") for d in differences if d.field not in used)
    return lines
