"""The precdiff capture format: every HDF5 name, the dtype codes and the format version.

This module is the single owner of the on-disk layout; ``docs/format.md`` is the prose form of it
(a test checks that every name here appears there). No other module writes an HDF5 path literal.

Layout of a capture file (format version 1)::

    /                                  attrs: format="precdiff-capture", format_version=1,
                                              complete (bool), precdiff_version, created_utc
    /manifest                          scalar UTF-8 string: JSON object (environment manifest)
    /input/ids                         int64 [seq]         the exact token ids the model saw
    /input/text                        scalar UTF-8 string (optional) rendered prompt text
    /tensors/<NNNNNN>                  one dataset per captured tensor, NNNNNN = forward order
                                       attrs: name, module, role ("output"|"input"), dtype (code),
                                              shape (int64 [ndim]), stored (bool),
                                              stat_min, stat_max, stat_mean, stat_std, stat_l2,
                                              nan_count, inf_count, numel
    /logprobs/prompt_topk_ids          int64   [seq, k]  top-k next-token ids at each prompt position
    /logprobs/prompt_topk_logprobs     float32 [seq, k]
    /generation/ids                    int64   [steps]   greedy token chosen at each step
    /generation/topk_ids               int64   [steps, k]
    /generation/topk_logprobs          float32 [steps, k]
    /generation/margin                 float32 [steps]   top-1 minus top-2 logprob at each step

A file is written as ``NAME.partial`` and renamed to ``NAME`` after ``complete`` is set; readers accept
an incomplete file and say so. Summary-only tensors (``--summary``) have ``stored=False`` and an empty
dataset; their statistics are still in the attributes.
"""

from __future__ import annotations

from typing import Final

import numpy as np

FORMAT_NAME: Final = "precdiff-capture"
FORMAT_VERSION: Final = 1
PARTIAL_SUFFIX: Final = ".partial"

# Root attributes.
ATTR_FORMAT: Final = "format"
ATTR_FORMAT_VERSION: Final = "format_version"
ATTR_COMPLETE: Final = "complete"
ATTR_PRECDIFF_VERSION: Final = "precdiff_version"
ATTR_CREATED: Final = "created_utc"

# Groups and datasets.
MANIFEST: Final = "manifest"
INPUT_GROUP: Final = "input"
INPUT_IDS: Final = "input/ids"
INPUT_TEXT: Final = "input/text"
TENSORS_GROUP: Final = "tensors"
LOGPROBS_GROUP: Final = "logprobs"
PROMPT_TOPK_IDS: Final = "logprobs/prompt_topk_ids"
PROMPT_TOPK_LOGPROBS: Final = "logprobs/prompt_topk_logprobs"
GENERATION_GROUP: Final = "generation"
GENERATION_IDS: Final = "generation/ids"
GENERATION_TOPK_IDS: Final = "generation/topk_ids"
GENERATION_TOPK_LOGPROBS: Final = "generation/topk_logprobs"
GENERATION_MARGIN: Final = "generation/margin"

# Per-tensor attributes.
T_NAME: Final = "name"
T_MODULE: Final = "module"
T_ROLE: Final = "role"
T_DTYPE: Final = "dtype"
T_SHAPE: Final = "shape"
T_STORED: Final = "stored"
T_NUMEL: Final = "numel"
STAT_NAMES: Final = ("min", "max", "mean", "std", "l2", "nan_count", "inf_count")
STAT_ATTR_PREFIX: Final = "stat_"  # nan_count / inf_count are stored without the prefix

ROLE_OUTPUT: Final = "output"
ROLE_INPUT: Final = "input"

TENSOR_KEY_DIGITS: Final = 6

# Dtype codes (safetensors vocabulary) -> numpy storage dtype. 16-bit floats are stored as their raw
# bit patterns in uint16 so that bf16 (which HDF5 lacks) and fp16 round-trip bit-exact and bitwise
# comparisons stay possible; the reader reinterprets them.
STORAGE_DTYPES: Final[dict[str, np.dtype]] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.uint16),
    "BF16": np.dtype(np.uint16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}

# Target of roughly 1 MiB per chunk: large enough for throughput, small enough that reading one
# tensor never pulls much more than it needs.
CHUNK_BYTES: Final = 1 << 20


def tensor_key(index: int) -> str:
    """The dataset path of the ``index``-th captured tensor (forward order)."""
    return f"{TENSORS_GROUP}/{index:0{TENSOR_KEY_DIGITS}d}"


def stat_attr(stat: str) -> str:
    """The attribute name that holds summary statistic ``stat`` on a tensor dataset."""
    return stat if stat.endswith("_count") else STAT_ATTR_PREFIX + stat


def partial_path_for(path: str) -> str:
    """The name a capture is written under until it is complete."""
    return path + PARTIAL_SUFFIX
