"""Character and token diffs of two renders: first differences, context windows, token alignment.

All functions are pure. Sequences are trimmed to what lies after their common prefix and before their
common suffix before ``difflib`` runs, and the middle is capped (:data:`MAX_MATCH`), so a diff of two
100k-token prompts that differ in one place stays linear.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from precdiff.templates.results import AlignmentRow, RenderWindow, Segment

__all__ = [
    "Chunk",
    "align_tokens",
    "common_prefix",
    "first_difference",
    "make_visible",
    "render_window",
    "text_chunks",
]

#: Longest differing middle (items per side) given to difflib; longer middles become one replace chunk.
MAX_MATCH = 20_000

T = TypeVar("T")

_VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def common_prefix(a: Sequence[T], b: Sequence[T]) -> int:
    """Length of the common prefix of two sequences (strings or id lists)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def common_suffix(a: Sequence[T], b: Sequence[T], floor: int) -> int:
    """Length of the common suffix, not reaching back past index ``floor`` of either sequence."""
    n = min(len(a), len(b)) - floor
    i = 0
    while i < n and a[len(a) - 1 - i] == b[len(b) - 1 - i]:
        i += 1
    return i


def first_difference(a: Sequence[T] | None, b: Sequence[T] | None) -> int | None:
    """Index of the first differing item (the shorter length for a prefix); ``None`` if equal/unknown."""
    if a is None or b is None or a == b:
        return None
    return common_prefix(a, b)


def make_visible(text: str) -> str:
    """Show whitespace and invisibles: ``·`` space, ``↵`` newline, ``→`` tab, ``⟨U+00A0⟩`` others."""
    out = []
    for char in text:
        if char in _VISIBLE:
            out.append(_VISIBLE[char])
        elif unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Co"):
            out.append(f"⟨U+{ord(char):04X}⟩")
        else:
            out.append(char)
    return "".join(out)


def _split_specials(text: str, specials: Sequence[str]) -> list[tuple[bool, str]]:
    ordered = sorted({s for s in specials if s}, key=len, reverse=True)
    parts: list[tuple[bool, str]] = []
    i = start = 0
    while i < len(text):
        hit = next((s for s in ordered if text.startswith(s, i)), None)
        if hit is None:
            i += 1
            continue
        if start < i:
            parts.append((False, text[start:i]))
        parts.append((True, hit))
        i += len(hit)
        start = i
    if start < len(text):
        parts.append((False, text[start:]))
    return parts


def _segments(text: str, specials: Sequence[str]) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for is_special, part in _split_specials(text, specials):
        if is_special:
            out.append(Segment("special", part, part))
            continue
        run, run_space = "", False
        for char in part:
            space = char.isspace() or unicodedata.category(char) in ("Cc", "Cf")
            if run and space != run_space:
                out.append(Segment("space" if run_space else "text", run, make_visible(run)))
                run = ""
            run, run_space = run + char, space
        if run:
            out.append(Segment("space" if run_space else "text", run, make_visible(run)))
    return tuple(out)


def render_window(
    text: str, at: int, specials: Sequence[str], before: int = 48, after: int = 80
) -> RenderWindow:
    """The characters of ``text`` around offset ``at``, widened so no special token is cut in half."""
    start, end = max(0, at - before), min(len(text), at + after)
    for token in specials:
        if not token:
            continue
        # widen the window over a special token straddling either edge
        for edge in (start, end):
            lo = text.rfind(token, max(0, edge - len(token) + 1), edge + len(token) - 1)
            if lo != -1 and lo < edge < lo + len(token):
                if edge == start:
                    start = lo
                else:
                    end = lo + len(token)
    return RenderWindow(
        start=start, end=end, diff_at=at - start, segments=_segments(text[start:end], specials)
    )


@dataclass(frozen=True)
class Chunk:
    """A differing region: ``a[a_start:a_end]`` stands where ``b[b_start:b_end]`` stands."""

    tag: Literal["replace", "insert", "delete"]
    a_start: int
    a_end: int
    b_start: int
    b_end: int


def _opcodes(a: Sequence[T], b: Sequence[T]) -> list[tuple[str, int, int, int, int]]:
    prefix = common_prefix(a, b)
    suffix = common_suffix(a, b, prefix)
    a_mid, b_mid = a[prefix : len(a) - suffix], b[prefix : len(b) - suffix]
    ops: list[tuple[str, int, int, int, int]] = []
    if prefix:
        ops.append(("equal", 0, prefix, 0, prefix))
    middle: Sequence[tuple[str, int, int, int, int]]
    if len(a_mid) > MAX_MATCH or len(b_mid) > MAX_MATCH:
        middle = [("replace", 0, len(a_mid), 0, len(b_mid))]
    else:
        middle = difflib.SequenceMatcher(None, a_mid, b_mid, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in middle:
        if (tag == "replace" and not (i2 - i1)) or (i1 == i2 and j1 == j2):
            continue
        ops.append((tag, prefix + i1, prefix + i2, prefix + j1, prefix + j2))
    if suffix:
        ops.append(("equal", len(a) - suffix, len(a), len(b) - suffix, len(b)))
    return ops


def text_chunks(a: str, b: str) -> tuple[Chunk, ...]:
    """The differing regions of two texts, in order (empty when they are equal)."""
    return tuple(
        Chunk(tag, i1, i2, j1, j2)  # type: ignore[arg-type]
        for tag, i1, i2, j1, j2 in _opcodes(a, b)
        if tag != "equal"
    )


def align_tokens(
    a: Sequence[int],
    b: Sequence[int],
    piece_a: Callable[[int], str],
    piece_b: Callable[[int], str],
    context: int = 4,
    rows: int = 24,
) -> tuple[AlignmentRow, ...]:
    """Token alignment rows around the first difference: ``context`` equal rows before, ``rows`` in all.

    ``piece_a`` / ``piece_b`` turn an id into its visible text with that side's tokenizer.
    """
    table: list[AlignmentRow] = []
    first = None
    for tag, i1, i2, j1, j2 in _opcodes(a, b):
        if tag == "equal":
            if first is None and i2 - i1 > context:
                # skip most of a long equal prefix: only its last `context` rows matter
                i1, j1 = i2 - context, j2 - context
            elif first is not None and len(table) >= first + rows:
                break
            for i, j in zip(range(i1, i2), range(j1, j2)):
                table.append(AlignmentRow("equal", i, a[i], piece_a(a[i]), j, b[j], piece_b(b[j])))
                if first is not None and len(table) >= first + rows:
                    break
            continue
        if first is None:
            first = len(table)
        span = max(i2 - i1, j2 - j1)
        for k in range(span):
            ia: int | None = i1 + k if i1 + k < i2 else None
            jb: int | None = j1 + k if j1 + k < j2 else None
            op: Literal["replace", "insert", "delete"] = (
                "replace" if ia is not None and jb is not None else "delete" if ia is not None else "insert"
            )
            table.append(
                AlignmentRow(
                    op,
                    ia,
                    None if ia is None else a[ia],
                    None if ia is None else piece_a(a[ia]),
                    jb,
                    None if jb is None else b[jb],
                    None if jb is None else piece_b(b[jb]),
                )
            )
            if len(table) >= first + rows:
                break
    start = max(0, (first or 0) - context)
    return tuple(table[start : start + rows])
