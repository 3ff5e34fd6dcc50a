"""``precdiff merge``: put the per-rank files of a tensor-parallel capture back into one ordinary capture.

Placement is read from the plan each rank recorded (manifest ``parallel.plan``: module pattern ->
transformers TP style), never guessed from shapes:

- the output of a module whose style shards its output (``colwise``, ``local_colwise``,
  ``packed_colwise``) is the rank's slice of the last dimension: the ranks' slices are concatenated
  in rank order;
- the input of a row-parallel module (``rowwise``, ``local_rowwise``) is the rank's slice of the last
  dimension: concatenated likewise;
- a module outside the plan that works on sharded data (the MLP's activation between its
  column-parallel gate and its row-parallel down projection, a per-head norm) has ranks that differ:
  its shard dimension is the last one whose size × world size is one of the model config's sizes
  (``intermediate_size``, ``num_attention_heads``, ``num_key_value_heads``, …), and the shards are
  concatenated along it;
- everything else is replicated (all-reduced or computed identically on every rank): rank 0's copy is
  kept, and every other rank's copy is checked bitwise — a replica that differs with no such dimension
  is reported, because ranks that should agree and do not are themselves a finding.

Tensors are merged one at a time (bounded memory: one tensor of all ranks at once). Summary-only
captures merge their statistics exactly from the shards' (min, max, NaN/Inf counts, and the mean, std
and L2 norm from per-shard sums).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from precdiff.errors import CaptureFormatError, InputError
from precdiff.store.dtypes import to_storage, torch_dtype
from precdiff.store.format import STAT_NAMES
from precdiff.store.reader import Capture, TensorInfo, open_capture
from precdiff.store.writer import CaptureWriter

SHARDED_OUTPUT = frozenset({"colwise", "local_colwise", "packed_colwise", "colwise_rep"})
SHARDED_INPUT = frozenset({"rowwise", "local_rowwise", "rowwise_rep"})


@dataclass(frozen=True)
class MergeResult:
    path: Path
    ranks: int
    tensors: int
    sharded: int  # tensors concatenated from shards
    replica_mismatches: tuple[str, ...]  # replicated tensors whose ranks disagree


def _pattern(plan_key: str) -> re.Pattern[str]:
    """A transformers plan key (``model.layers.*.mlp.down_proj``) as a regex over module names."""
    return re.compile("^" + re.escape(plan_key).replace(r"\*", r"\d+") + "$")


def _style(module: str, plan: dict[str, re.Pattern[str]], styles: dict[str, str]) -> str | None:
    for key, pattern in plan.items():
        if pattern.match(module):
            return styles[key]
    return None


# Config entries whose values are the full sizes a sharded dimension can have.
_SIZE_KEYS = (
    "intermediate_size",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_size",
    "head_dim",
)


def shard_dim(infos: Sequence[TensorInfo], config: dict[str, object], world: int) -> int | None:
    """For a tensor outside the plan whose ranks differ: the dimension it is sharded along, if any."""
    sizes = {int(v) for k in _SIZE_KEYS if isinstance(v := config.get(k), int)}
    shape = infos[0].shape
    for dim in range(len(shape) - 1, -1, -1):
        if shape[dim] * world in sizes and shape[dim] * world != shape[dim]:
            return dim - len(shape)
    return None


def placement(info: TensorInfo, plan: dict[str, re.Pattern[str]], styles: dict[str, str]) -> str:
    """``"shard"`` (last dimension split over ranks) or ``"replicate"`` by the plan, for one tensor."""
    style = _style(info.module, plan, styles)
    if style is None:
        return "replicate"
    is_input = ":input[" in info.name[len(info.module) :]
    if is_input:
        first_input = info.name[len(info.module) :].startswith(":input[0]")
        return "shard" if style in SHARDED_INPUT and first_input else "replicate"
    return "shard" if style in SHARDED_OUTPUT else "replicate"


def _stats(values: np.ndarray) -> list[float]:
    """The seven summary statistics (store.format.STAT_NAMES) of a decoded array, in float64."""
    flat = values.reshape(-1).astype(np.float64)
    nan, inf = int(np.isnan(flat).sum()), int(np.isinf(flat).sum())
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return [math.nan] * 5 + [float(nan), float(inf)]
    mean = float(finite.mean())
    return [
        float(finite.min()),
        float(finite.max()),
        mean,
        float(finite.std()),
        float(np.linalg.norm(finite)),
        nan,
        inf,
    ]


def _combine_stats(parts: Sequence[TensorInfo]) -> list[float]:
    """Exact statistics of a concatenation from the shards' own (for summary-only captures)."""
    rows = [[p.stats[name] for name in STAT_NAMES] for p in parts]
    counts = [p.numel - r[5] - r[6] for p, r in zip(parts, rows)]
    nan, inf = sum(r[5] for r in rows), sum(r[6] for r in rows)
    total = sum(counts)
    if total == 0:
        return [math.nan] * 5 + [nan, inf]
    live = [(c, r) for c, r in zip(counts, rows) if c > 0]
    mean = sum(c * r[2] for c, r in live) / total
    second = sum(c * (r[3] ** 2 + r[2] ** 2) for c, r in live) / total
    l2 = math.sqrt(sum(r[4] ** 2 for _, r in live))
    return [
        min(r[0] for _, r in live),
        max(r[1] for _, r in live),
        mean,
        math.sqrt(max(second - mean * mean, 0.0)),
        l2,
        nan,
        inf,
    ]


def _check_ranks(captures: Sequence[Capture]) -> tuple[dict[str, re.Pattern[str]], dict[str, str], int]:
    facts = []
    for cap in captures:
        parallel = cap.manifest.parallel if cap.manifest is not None else None
        if not parallel or parallel.get("kind") != "tensor":
            raise InputError(
                f"{cap.path} is not one rank of a tensor-parallel capture (no manifest 'parallel' entry)"
            )
        facts.append(parallel)
    world = int(facts[0]["world_size"])
    ranks = sorted(int(f["rank"]) for f in facts)
    if ranks != list(range(world)) or any(int(f["world_size"]) != world for f in facts):
        raise InputError(
            f"merge needs exactly one file per rank 0..{world - 1} of one capture, got ranks {ranks}; "
            "pass every RUN.rankR.h5 of the run"
        )
    if any(c.input_ids != captures[0].input_ids for c in captures):
        raise InputError("the rank files saw different input ids: they are not one tensor-parallel run")
    styles = {str(k): str(v) for k, v in dict(facts[0].get("plan") or {}).items()}
    return {k: _pattern(k) for k in styles}, styles, world


def merge_ranks(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> MergeResult:
    """Merge the rank files of one tensor-parallel capture into ``out`` (written atomically).

    Raises:
        InputError: missing ranks, mixed runs, ``out`` among the inputs, files that are not rank files.
        CaptureFormatError: a rank file lacks a tensor rank 0 has, or a shard has the wrong shape.
    """
    sources = [Path(p) for p in paths]
    if Path(out).resolve() in {p.resolve() for p in sources}:
        raise InputError(f"--out {out} is one of the rank files; choose another output path")
    with _open_all(sources) as captures:
        plan, styles, world = _check_ranks(captures)
        captures.sort(key=lambda c: int(c.manifest.parallel["rank"]))  # type: ignore[union-attr,index]
        first = captures[0]
        manifest = first.manifest
        assert manifest is not None and manifest.parallel is not None
        merged_manifest = dataclasses.replace(
            manifest, parallel={**manifest.parallel, "rank": None, "merged": True}
        )
        sharded, mismatches = 0, []
        with CaptureWriter(out) as writer:
            writer.write_manifest(merged_manifest)
            writer.write_input(first.input_ids, first.input_text)
            config = manifest.model.config
            for name in first.tensor_names():
                infos = [_info(cap, name) for cap in captures]
                dim: int | None = -1 if placement(infos[0], plan, styles) == "shard" else None
                if dim is None and _replicas_differ(captures, infos):
                    dim = shard_dim(infos, config, world)
                    if dim is None:
                        mismatches.append(name)
                sharded += dim is not None
                _merge_tensor(writer, captures, infos, dim)
            topk = first.prompt_logprobs
            if topk is not None:
                writer.write_prompt_logprobs(topk.ids, topk.logprobs)
            generation = first.generation
            if generation is not None:
                writer.write_generation(
                    generation.ids,
                    generation.topk.ids,
                    generation.topk.logprobs,
                    generation.margin,
                    generation.top_logit,
                )
            path = writer.finish()
        return MergeResult(path, world, len(first.tensor_names()), sharded, tuple(mismatches))


def _info(cap: Capture, name: str) -> TensorInfo:
    if name not in cap.tensor_names():
        raise CaptureFormatError(
            f"{cap.path} has no tensor {name!r} that rank 0 captured; the rank files differ"
        )
    return cap.info(name)


def _replicas_differ(captures: Sequence[Capture], infos: Sequence[TensorInfo]) -> bool:
    first = infos[0]
    if any(i.stats != first.stats or i.shape != first.shape for i in infos[1:]):
        return True
    if not all(i.stored for i in infos):
        return False  # equal statistics are all a summary capture can show
    data = captures[0].tensor(first.name)
    return any(not np.array_equal(cap.tensor(first.name), data, equal_nan=True) for cap in captures[1:])


def _merge_tensor(
    writer: CaptureWriter, captures: Sequence[Capture], infos: Sequence[TensorInfo], dim: int | None
) -> None:
    """Write one merged tensor: shards concatenated along ``dim``, else rank 0's replica."""
    first = infos[0]
    dtype = torch_dtype(first.dtype)
    stored = all(i.stored for i in infos)
    shape = list(first.shape)
    if dim is not None:
        others = [d for d in range(len(shape)) if d != len(shape) + dim]
        if any([i.shape[d] for d in others] != [shape[d] for d in others] for i in infos):
            raise CaptureFormatError(
                f"{first.name}: shards of shapes {[i.shape for i in infos]} do not concatenate"
            )
        shape[dim] = sum(i.shape[dim] for i in infos)
        data = np.concatenate([cap.tensor(first.name) for cap in captures], axis=dim) if stored else None
        stats = _stats(data) if data is not None else _combine_stats(infos)
    else:
        data = captures[0].tensor(first.name) if first.stored else None
        stats = [first.stats[n] for n in STAT_NAMES]
    storage = None
    if data is not None:
        # Decoded values are exact (bf16 -> float32), so the round trip to the stored bits is too.
        storage = to_storage(torch.from_numpy(np.ascontiguousarray(data)).to(dtype))
    writer.write_tensor(
        first.name,
        module=first.module,
        role=first.role,
        dtype=dtype,
        shape=shape,
        stats=stats,
        data=storage,
        kind=first.kind,
        token_axis=first.token_axis,
        inputs=first.inputs,
    )


class _open_all:
    """Open every rank file; close them all on exit."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = paths
        self.captures: list[Capture] = []

    def __enter__(self) -> list[Capture]:
        try:
            for path in self.paths:
                self.captures.append(open_capture(path))
        except BaseException:
            self.__exit__()
            raise
        return self.captures

    def __exit__(self, *exc: object) -> None:
        for cap in self.captures:
            cap.close()
