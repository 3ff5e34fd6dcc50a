"""Tensor-parallel capture: each rank of a ``torchrun`` job captures its own shard into ``RUN.rankR.h5``.

precdiff rides on what exists: torch.distributed (gloo on CPU, NCCL on CUDA, HCCL on Ascend — the
last untested on hardware) and transformers' ``tp_plan="auto"``, which shards every Linear its model
class names in ``base_model_tp_plan``. precdiff's hooks are registered after transformers' own, so a
module's captured output is what the rest of the model sees: a column-parallel Linear's output is the
rank's shard of the last dimension, a row-parallel Linear's output is the all-reduced (replicated)
tensor, and its input is the rank's shard. The plan goes into each rank's manifest (``parallel``) so
that ``precdiff merge`` (store/merge.py) can put the shards back together without guessing.

Launch::

    torchrun --nproc-per-node 2 -m precdiff capture MODEL --tp 2 --out run.h5   # run.rank0.h5, run.rank1.h5
    precdiff merge run.rank0.h5 run.rank1.h5 --out run.h5
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from precdiff.capture import tiny
from precdiff.capture.models import (
    TINY_PREFIX,
    LoadedModel,
    _parse_tiny,
    _sha256_of_files,
    _weight_files,
    sha256_of_tensors,
)
from precdiff.capture.names import decoder_layers
from precdiff.errors import InputError, ModelLoadError
from precdiff.store.format import rank_path

BACKENDS = {"cpu": "gloo", "cuda": "nccl", "npu": "hccl"}


@dataclass(frozen=True)
class TensorParallel:
    """This process's place in a tensor-parallel capture."""

    rank: int
    world_size: int
    backend: str

    def out_path(self, out: str | os.PathLike[str]) -> Path:
        return Path(rank_path(str(out), self.rank))

    def facts(self, model: Any) -> dict[str, Any]:
        """The ``parallel`` manifest entry: who this rank is and the plan that sharded the model."""
        plan = getattr(model, "_tp_plan", None) or getattr(model, "tp_plan", None) or {}
        return {
            "kind": "tensor",
            "rank": self.rank,
            "world_size": self.world_size,
            "backend": self.backend,
            "plan": {str(k): str(v) for k, v in dict(plan).items()},
        }


def tensor_parallel(tp: int, device: torch.device) -> TensorParallel | None:
    """Join the ``torchrun`` job for ``--tp N`` (``None`` for N = 1).

    Raises:
        InputError: the process was not launched by torchrun with N processes.
    """
    if tp <= 1:
        return None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != tp:
        raise InputError(
            f"--tp {tp} needs {tp} processes, one per rank; launch it as `torchrun --nproc-per-node {tp} "
            f"-m precdiff capture … --tp {tp}` (this process sees WORLD_SIZE={world})"
        )
    import torch.distributed as dist

    backend = BACKENDS.get(device.type)
    if backend is None:
        raise InputError(f"--tp needs a cpu, cuda or npu device, got {device}")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return TensorParallel(dist.get_rank(), dist.get_world_size(), backend)


def running_rank() -> TensorParallel | None:
    """This process's rank when an engine (hooks/) already runs torch.distributed with several ranks."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return TensorParallel(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))


def _shared_directory(source: str, seed: int) -> tuple[Path, str]:
    """A model directory every rank can load, and the weights hash a ``--tp 1`` capture records."""
    import torch.distributed as dist

    if not source.startswith(TINY_PREFIX):
        path = Path(source)
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"--tp needs a model directory with config.json (or tiny:<arch>), got {source!r}"
            )
        return path, ""
    arch = _parse_tiny(source)
    model = tiny.build_model(arch, seed=seed)
    weights = sha256_of_tensors(model)  # the same hash an unsharded capture of tiny:<arch> records
    folder = [tempfile.mkdtemp(prefix="precdiff_tp_")] if dist.get_rank() == 0 else [""]
    if dist.get_rank() == 0:
        model.save_pretrained(folder[0])
        tiny.build_tokenizer(arch).save_pretrained(folder[0])
    dist.broadcast_object_list(folder, src=0)  # ranks of one host share the temporary folder
    dist.barrier()
    return Path(folder[0]), weights


def load_sharded(
    source: str, *, dtype: torch.dtype, device: torch.device, attn_implementation: str | None, seed: int
) -> LoadedModel:
    """Load ``source`` with transformers' ``tp_plan="auto"`` on this rank's device."""
    path, weights = _shared_directory(source, seed)
    kwargs: dict[str, Any] = {"tp_plan": "auto", "dtype": dtype, "local_files_only": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, ImportError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load {source} tensor-parallel: {first}") from None
    if next(model.parameters()).device.type != device.type:
        raise ModelLoadError(
            f"tensor-parallel loading placed the model on {next(model.parameters()).device}, not {device}"
        )
    model.eval()
    if not weights:
        weights = _sha256_of_files(_weight_files(path))
    layers_path, num_layers = decoder_layers(model)
    return LoadedModel(model, tokenizer, source, weights, layers_path, num_layers)
