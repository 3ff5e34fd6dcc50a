"""Resource bounds of the template sandbox: sizes of what a template builds, steps, time and memory.

``sandbox.py`` routes every value a template produces through these checks: operator results (``*``,
``+``, ``~``, ``%``, ``**``), filter and method-call results, namespace attribute sets and the rendered
output. Where the size of a result is known before it is built (repetition, concatenation, padding,
joins, serialising a nested structure with ``tojson`` / ``string`` / ``join``), the check runs *before*
the allocation. Because a loop can keep many results that are each under the size cap, the render also
has a memory budget: the process's resident memory may not grow by more than
:attr:`SandboxLimits.max_memory` while one template renders, checked every 1,024 steps and whenever the
results built since the last check add up to :data:`_PROBE_ITEMS` items.
"""

from __future__ import annotations

import re
import resource
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from precdiff.errors import TemplateSandboxError

__all__ = [
    "DEFAULT_LIMITS",
    "Budget",
    "SandboxLimits",
    "bounded_list",
    "check_format_widths",
    "check_serialised",
    "check_size",
    "flat_size",
    "limits",
    "pre_check_binop",
    "pre_check_call",
    "too_big",
]


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one render. The defaults leave real templates (and 100k-token chats) alone.

    ``max_chars``: items of any one string or list a template builds, and characters of the output.
    ``max_memory``: bytes the process's resident memory may grow by during one render.
    ``max_input_chars``: characters of the conversation (messages, tools, template kwargs together) and of
    a rendered-text side, checked before anything is rendered or tokenized (tokenizing 2M characters
    takes about 2 s and 400 MB).
    """

    max_range: int = 65_536
    max_chars: int = 16_000_000
    max_steps: int = 2_000_000
    max_seconds: float = 10.0
    max_memory: int = 512 * 2**20
    max_input_chars: int = 2_000_000


DEFAULT_LIMITS = SandboxLimits()

# Items built by checked results between two memory probes (a probe reads /proc/self/statm).
_PROBE_ITEMS = 1_000_000
_PAGE = resource.getpagesize()


def _rss() -> int:
    """Resident memory of this process in bytes (peak resident memory where /proc is absent)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)


class Budget:
    """Steps, time and memory used by the render in progress (installed by ``sandbox.render_template``)."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.steps = 0
        self.built = 0
        self.deadline = time.monotonic() + limits.max_seconds
        self.baseline = _rss()

    def charge(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise TemplateSandboxError(
                f"chat template exceeded the sandbox step budget ({self.limits.max_steps:,} steps): "
                "it loops far more than any chat template needs; fix the template's loops"
            )
        if self.steps % 1024 == 0:
            if time.monotonic() > self.deadline:
                raise TemplateSandboxError(
                    f"chat template exceeded the sandbox time budget ({self.limits.max_seconds:g} s); "
                    "fix the template's loops"
                )
            self.check_memory()

    def note(self, items: int) -> None:
        """Count ``items`` just built; probe the memory when enough have been built since the last probe."""
        self.built += items
        if self.built >= _PROBE_ITEMS:
            self.built = 0
            self.check_memory()

    def check_memory(self) -> None:
        grown = _rss() - self.baseline
        if grown > self.limits.max_memory:
            raise TemplateSandboxError(
                f"chat template grew memory by {grown / 2**20:,.0f} MiB while rendering, above the sandbox "
                f"limit of {self.limits.max_memory / 2**20:,.0f} MiB; a chat template never needs this"
            )


# The budget of the render running on this thread (renders do not nest).
active: list[Budget] = []


def limits() -> SandboxLimits:
    return active[-1].limits if active else DEFAULT_LIMITS


def too_big(size: int, what: str) -> TemplateSandboxError:
    cap = limits().max_chars
    return TemplateSandboxError(
        f"chat template tried to build {what} of {size:,} items, above the sandbox limit of {cap:,}; "
        "a chat template never needs this"
    )


def check_size(value: Any, what: str) -> Any:
    """Refuse ``value`` when it is a string or sequence above the cap; count it against the memory budget."""
    if isinstance(value, (str, list, tuple, bytes, dict)):
        if len(value) > limits().max_chars:
            raise too_big(len(value), what)
        if active:
            active[-1].note(len(value))
    return value


def _own_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, Mapping):
        return 2 + 4 * len(value)
    if isinstance(value, (list, tuple)):
        return 2 + 2 * len(value)
    return 8


def _children(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [*value.keys(), *value.values()]
    return list(value)


def _nested(value: Any) -> bool:
    return isinstance(value, (list, tuple, Mapping))


def flat_size(value: Any, cap: int) -> int:
    """Characters ``value`` takes when serialised (JSON or ``str``); any count above ``cap`` means "too big".

    Shared sub-structures count every time they occur, as serialising writes them out every time: a
    list nested in itself 60 levels deep (``[a, a]`` of ``[a, a]`` ...) is small in memory and
    exabytes as text. Each distinct container is visited once (its size is remembered by identity), so
    the walk costs the structure's size in memory, not in text.
    """
    if not _nested(value):
        return _own_size(value)
    memo: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in memo:
            continue
        kids = _children(node)
        if not children_done:
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if _nested(kid) and id(kid) not in memo)
            continue
        total = _own_size(node)
        for kid in kids:
            total += memo.get(id(kid), 0) if _nested(kid) else _own_size(kid)
            if total > cap:
                return total
        memo[id(node)] = total
    return memo[id(value)]


def check_serialised(values: Iterable[Any], what: str) -> None:
    """Refuse before serialising when the containers among ``values`` would serialise above the cap."""
    cap = limits().max_chars
    total = 0
    for value in values:
        if isinstance(value, (list, tuple, Mapping)):
            total += flat_size(value, cap)
            if total > cap:
                raise too_big(total, what)


def bounded_list(items: Iterable[Any], what: str) -> list[Any]:
    """Materialise an iterable (a ``map`` / ``select`` generator) while its serialised size stays under the cap."""
    if isinstance(items, list):
        return items
    if isinstance(items, (str, tuple, Mapping)):
        return list(items)
    cap = limits().max_chars
    out: list[Any] = []
    total = 0
    for item in items:
        total += flat_size(item, cap) if isinstance(item, (list, tuple, Mapping, str)) else 8
        if total > cap:
            raise too_big(total, what)
        out.append(item)
    return out


_WIDTH = re.compile(r"(\d+)")


def check_format_widths(fmt: str) -> None:
    # "%0999999999d" / "{:>999999999}" allocate the width before anything else can check.
    cap = limits().max_chars
    for match in _WIDTH.finditer(fmt):
        if len(match.group(1)) > 9 or int(match.group(1)) > cap:
            raise too_big(int(match.group(1)), "a formatted string")


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def pre_check_binop(op: str, left: Any, right: Any) -> None:
    cap = limits().max_chars
    if op == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > cap:
                raise too_big(len(seq) * count, "a repeated sequence")
    elif op == "+":
        if _sized(left) + _sized(right) > cap:
            raise too_big(_sized(left) + _sized(right), "a concatenation")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = max(abs(left).bit_length(), 1) * right
            if bits > 65_536:
                raise TemplateSandboxError(
                    f"chat template tried to compute a {bits:,}-bit power, above the sandbox limit of "
                    "65,536 bits; a chat template never needs this"
                )
    elif op == "%" and isinstance(left, str):
        check_format_widths(left)
        check_serialised([right], "a formatted string")


def pre_check_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call whose result would be too big; returns ``args`` (a generator argument materialised)."""
    cap = limits().max_chars
    name = getattr(func, "__name__", "")
    owner = getattr(func, "__self__", None)
    wrapped = getattr(func, "__wrapped__", None)
    if name in ("format", "format_map") and isinstance(getattr(wrapped, "__self__", None), str):
        check_format_widths(wrapped.__self__)  # type: ignore[union-attr]
        check_serialised([*args, *kwargs.values()], "a formatted string")
    if not isinstance(owner, str):
        return args
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int) and args[0] > cap:
        raise too_big(args[0], "a padded string")
    if (
        name == "expandtabs"
        and args
        and isinstance(args[0], int)
        and args[0] * max(owner.count("\t"), 1) > cap
    ):
        raise too_big(args[0] * owner.count("\t"), "an expanded string")
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        grown = len(owner) + (owner.count(args[0])) * (len(args[1]) - len(args[0]))
        if grown > cap:
            raise too_big(grown, "a replaced string")
    if name == "join" and args:
        parts = bounded_list(args[0], "a joined string")
        total = flat_size(parts, cap) + len(owner) * len(parts)
        if total > cap:
            raise too_big(total, "a joined string")
        args = (parts, *args[1:])
    return args
