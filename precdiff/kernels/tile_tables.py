"""GEMM tile tables tuned for one GPU model, stored as JSON: in the user cache and shipped with precdiff.

``precdiff kernels tune`` writes one file per GPU model (keyed by the device name and compute
capability) into the user cache; :func:`for_device` finds the table for the GPU at hand, preferring
the user's own tuning over a table shipped in ``precdiff/kernels/tables/``. Both are plain JSON (no
code is executed to read them) and carry the bit-identity evidence they were accepted on.

File format (``format`` 1)::

    {"format": 1, "device_name": "NVIDIA H200", "capability": [9, 0], "tuned_on": "...",
     "tables": {"half": {"4096x4096": [[max_m, BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, load], ...]}},
     "bit_check": {...}, "timings": [...]}

``max_m`` of the last bucket of every shape is ``null`` (any M).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from precdiff.errors import KernelError

FORMAT = 1
UNBOUNDED = 1 << 62  # the same sentinel as gemm_tiles.UNBOUNDED (no import: gemm_tiles imports this)

Config = tuple[int, int, int, int, int, int]
Bucket = tuple[int, Config]
Tables = dict[str, dict[tuple[int, int], list[Bucket]]]


@dataclass(frozen=True)
class TileTable:
    """The tuned tables of one GPU model and where they came from."""

    device_name: str
    capability: tuple[int, int]
    tuned_on: str
    tables: Tables
    source: str  # file path, for the manifest

    def to_json(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        tables = {
            kind: {
                f"{k}x{n}": [[None if m >= UNBOUNDED else m, *cfg] for m, cfg in buckets]
                for (k, n), buckets in shapes.items()
            }
            for kind, shapes in self.tables.items()
        }
        return {
            "format": FORMAT,
            "device_name": self.device_name,
            "capability": list(self.capability),
            "tuned_on": self.tuned_on,
            "tables": tables,
            **(extra or {}),
        }


def cache_dir() -> Path:
    """``$PRECDIFF_CACHE_DIR``, else ``$XDG_CACHE_HOME/precdiff``, else ``~/.cache/precdiff``."""
    explicit = os.environ.get("PRECDIFF_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "precdiff"


def file_name(device_name: str, capability: tuple[int, int]) -> str:
    """``nvidia_h200_sm90.json``: the device name folded to a file name, plus the capability."""
    slug = re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_") or "gpu"
    return f"{slug}_sm{capability[0]}{capability[1]}.json"


def user_path(device_name: str, capability: tuple[int, int]) -> Path:
    return cache_dir() / "gemm_tiles" / file_name(device_name, capability)


def parse(data: Any, source: str) -> TileTable:
    """Validate a table file's JSON; a malformed file is a :class:`KernelError` naming it."""

    def bad(why: str) -> KernelError:
        return KernelError(
            f"GEMM tile table {source} is not usable ({why}); delete it and run `precdiff kernels tune` again"
        )

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f"expected a JSON object with format {FORMAT}")
    try:
        capability = (int(data["capability"][0]), int(data["capability"][1]))
        tables: Tables = {}
        for kind, shapes in data["tables"].items():
            if kind not in ("half", "fp32"):
                raise bad(f"unknown table kind {kind!r}")
            parsed: dict[tuple[int, int], list[Bucket]] = {}
            for shape, rows in shapes.items():
                k, n = (int(v) for v in shape.split("x"))
                buckets: list[Bucket] = []
                for row in rows:
                    max_m = UNBOUNDED if row[0] is None else int(row[0])
                    cfg = tuple(int(v) for v in row[1:])
                    if len(cfg) != 6:
                        raise bad(f"a {kind} {shape} bucket has {len(cfg)} config values, not 6")
                    buckets.append((max_m, cfg))
                if not buckets or buckets[-1][0] != UNBOUNDED:
                    raise bad(f"the {kind} {shape} buckets do not end with an unbounded one")
                parsed[(k, n)] = buckets
            tables[kind] = parsed
        return TileTable(str(data["device_name"]), capability, str(data.get("tuned_on", "")), tables, source)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise bad(f"{type(exc).__name__}: {exc}") from None


def read(path: Path) -> TileTable:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KernelError(
            f"cannot read GEMM tile table {path}: {exc}; delete it and run `precdiff kernels tune` again"
        ) from None
    return parse(data, str(path))


def write(table: TileTable, extra: dict[str, Any] | None = None, path: Path | None = None) -> Path:
    """Write ``table`` atomically to ``path`` (default: the user cache file for its GPU model)."""
    target = path or user_path(table.device_name, table.capability)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(table.to_json(extra), indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        raise KernelError(
            f"cannot write the GEMM tile table to {target}: {exc.strerror or exc}; set PRECDIFF_CACHE_DIR "
            "to a writable folder"
        ) from None
    for_device.cache_clear()
    return target


def _shipped(name: str) -> TileTable | None:
    try:
        entry = resources.files("precdiff.kernels").joinpath("tables", name)
        if not entry.is_file():
            return None
        return parse(json.loads(entry.read_text(encoding="utf-8")), f"precdiff/kernels/tables/{name}")
    except (OSError, ValueError, ModuleNotFoundError):
        return None


@functools.lru_cache(maxsize=16)
def for_device(device_name: str, capability: tuple[int, int]) -> TileTable | None:
    """The user's tuned table for this GPU model, else a shipped one, else ``None``."""
    user = user_path(device_name, capability)
    if user.is_file():
        return read(user)
    return _shipped(file_name(device_name, capability))
