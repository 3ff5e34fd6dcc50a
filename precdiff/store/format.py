"""The precdiff capture format: every HDF5 name, the dtype codes and the format version.

This module is the single owner of the on-disk layout; ``docs/format.md`` is the prose form of it
(a test checks that every name here appears there). No other module writes an HDF5 path literal.

Layout of a capture file (format version 2; version 1 lacks the index fields marked v2)::

    /                                  attrs: format="precdiff-capture", format_version=2,
                                              complete (bool), precdiff_version, created_utc,
                                              skipped (JSON, optional)
    /manifest                          scalar UTF-8 string: JSON object (environment manifest)
    /input/ids                         int64 [seq]         the exact token ids the model saw
    /input/text                        scalar UTF-8 string (optional) rendered prompt text
    /tensor_index                      compound [n], one row per captured tensor in forward order:
                                       name, module, role ("output"|"input"), dtype (code),
                                       ndim, shape (int64[8], -1 past ndim), numel, stored (bool),
                                       stats (float64[7]: min max mean std l2 nan_count inf_count),
                                       v2: kind ("module_output"|"module_input"|"op_output"),
                                       token_axis (int64, -1: none), inputs (JSON list of op input
                                       references, "" unless an op), alias_of (name of an earlier
                                       row this one exactly aliases, else ""), placement (reserved,
                                       JSON object or ""), call (optional: files before it lack
                                       it; JSON object of an op's full call for replay, "" unless
                                       an op output stored in full)
    /tensors/<NNNNNN>                  the data of index row NNNNNN when stored (attrs: name, dtype)
    /sketches                          float64 [rows, width] (optional, attrs: method): row i is the
                                       summary sketch of index row i; NaN rows and rows past its end
                                       have none
    /sketch_checksums                  uint64 [rows] (with /sketches): the exact checksum of row i
    /logprobs/prompt_topk_ids          int64   [seq, k]  top-k next-token ids at each prompt position
    /logprobs/prompt_topk_logprobs     float32 [seq, k]
    /generation/ids                    int64   [steps]   greedy token chosen at each step
    /generation/topk_ids               int64   [steps, k]
    /generation/topk_logprobs          float32 [steps, k]
    /generation/margin                 float32 [steps]   top-1 minus top-2 logprob at each step
    /generation/top_logit              float32 [steps]   (optional) the top-1 logit, before log_softmax

A file is written as ``NAME.partial`` and renamed to ``NAME`` after ``complete`` is set; readers accept
an incomplete file and say so. Summary-only tensors (``--summary``) have ``stored=False`` and no data
dataset; their statistics are in the index. One index table (appended in batches) instead of a
dataset with attributes per tensor keeps a summary capture's cost per tensor in microseconds.
"""

from __future__ import annotations

import re
from typing import Final

import numpy as np

FORMAT_NAME: Final = "precdiff-capture"
FORMAT_VERSION: Final = 2
# Versions this reader opens: version 1 lacks the v2 index fields, which then read as absent.
READABLE_VERSIONS: Final = (1, 2)
PARTIAL_SUFFIX: Final = ".partial"

# Root attributes.
ATTR_FORMAT: Final = "format"
ATTR_FORMAT_VERSION: Final = "format_version"
ATTR_COMPLETE: Final = "complete"
ATTR_PRECDIFF_VERSION: Final = "precdiff_version"
ATTR_CREATED: Final = "created_utc"
ATTR_SKIPPED: Final = "skipped"  # JSON list of {"name", "reason"}: tensors the format cannot hold

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
GENERATION_TOP_LOGIT: Final = "generation/top_logit"  # optional: files before it lack it

# The tensor index: a compound dataset with these fields, and the attributes of data datasets.
TENSOR_INDEX: Final = "tensor_index"
T_NAME: Final = "name"
T_MODULE: Final = "module"
T_ROLE: Final = "role"
T_DTYPE: Final = "dtype"
T_NDIM: Final = "ndim"
T_SHAPE: Final = "shape"
T_NUMEL: Final = "numel"
T_STORED: Final = "stored"
T_STATS: Final = "stats"
# Version-2 index fields.
T_KIND: Final = "kind"
T_TOKEN_AXIS: Final = "token_axis"  # axis of the prompt's tokens, recorded at capture; -1: none
T_INPUTS: Final = "inputs"  # JSON list of input references (op outputs only), else ""
T_ALIAS_OF: Final = "alias_of"  # name of an earlier tensor this one exactly aliases (no data), else ""
T_PLACEMENT: Final = "placement"  # reserved: JSON {"dim", "rank", "world_size", "full_shape"}, else ""
# Optional version-2 field, after the others: files written before op replay lack it (read as no call).
# JSON object of the op's call (docs/format.md "Op calls"); "" for module tensors and summary rows.
T_CALL: Final = "call"
NO_TOKEN_AXIS: Final = -1
V2_FIELDS: Final = (T_KIND, T_TOKEN_AXIS, T_INPUTS, T_ALIAS_OF, T_PLACEMENT)
PLACEMENT_KEYS: Final = ("dim", "rank", "world_size", "full_shape")
MAX_NDIM: Final = 8
STAT_NAMES: Final = ("min", "max", "mean", "std", "l2", "nan_count", "inf_count")
# Rows are appended in batches of at most this many (and at once for a tensor whose data is stored).
INDEX_BATCH: Final = 64
# ... and of at most this many in an op-level capture (``--level op``), whose forward writes thousands.
OP_INDEX_BATCH: Final = 1024

ROLE_OUTPUT: Final = "output"
ROLE_INPUT: Final = "input"

# Tensor kinds (v2). Version-1 rows read as module_output / module_input after their role.
KIND_MODULE_OUTPUT: Final = "module_output"
KIND_MODULE_INPUT: Final = "module_input"
KIND_OP_OUTPUT: Final = "op_output"
KINDS: Final = (KIND_MODULE_OUTPUT, KIND_MODULE_INPUT, KIND_OP_OUTPUT)

# Op input references (the entries of ``inputs``): a tensor name of this capture, or one of these.
REF_CONSTANT: Final = "constant"  # a tensor made outside the traced forward (e.g. the input ids)
REF_PARAMETER: Final = "parameter "  # + the parameter's fully qualified name
REF_BUFFER: Final = "buffer "  # + the buffer's fully qualified name

TENSOR_KEY_DIGITS: Final = 6
# Summary sketches (optional in version 2: files without them read as having none). Row i of both
# datasets belongs to index row i; they are appended with the index rows, in the same batches.
SKETCHES: Final = "sketches"  # float64 [rows, width]; a NaN row: that tensor has no sketch
SKETCH_CHECKSUMS: Final = "sketch_checksums"  # uint64 [rows]: exact checksum of the tensor's bits
ATTR_SKETCH_METHOD: Final = "method"  # attribute of SKETCHES: the sketch function (must match to compare)
SKETCH_CHUNK_ROWS: Final = 64  # rows per HDF5 chunk of SKETCHES (128 KiB at width 256)

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


def index_dtype(version: int = FORMAT_VERSION) -> np.dtype:
    """The compound dtype of :data:`TENSOR_INDEX` rows written by format ``version``."""
    import h5py

    text = h5py.string_dtype(encoding="utf-8")
    fields: list[tuple[str, object] | tuple[str, object, tuple[int, ...]]] = [
        (T_NAME, text),
        (T_MODULE, text),
        (T_ROLE, text),
        (T_DTYPE, text),
        (T_NDIM, np.int64),
        (T_SHAPE, np.int64, (MAX_NDIM,)),
        (T_NUMEL, np.int64),
        (T_STORED, np.bool_),
        (T_STATS, np.float64, (len(STAT_NAMES),)),
    ]
    if version >= 2:
        fields += [
            (T_KIND, text),
            (T_TOKEN_AXIS, np.int64),
            (T_INPUTS, text),
            (T_ALIAS_OF, text),
            (T_PLACEMENT, text),
            (T_CALL, text),
        ]
    return np.dtype(fields)


def rank_path(path: str, rank: int) -> str:
    """Where rank ``rank`` of a tensor-parallel capture writes: ``run.h5`` -> ``run.rank0.h5``."""
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}.rank{rank}.{suffix}" if dot and "/" not in suffix else f"{path}.rank{rank}"


def partial_path_for(path: str) -> str:
    """The name a capture is written under until it is complete."""
    return path + PARTIAL_SUFFIX


def layer_index(name: str, layers_path: str | None) -> int | None:
    """The decoder-layer index a tensor name belongs to (``model.layers.12.mlp[0]`` -> 12), else ``None``.

    Tensor names are HF module paths plus the suffixes ``[i]``/``[key]`` (tuple/dict outputs),
    ``:input[...]`` (module inputs) and ``#n`` (repeated calls); see docs/format.md.
    """
    if not layers_path or not name.startswith(layers_path + "."):
        return None
    head = re.split(r"[.\[:#/]", name[len(layers_path) + 1 :], maxsplit=1)[0]
    return int(head) if head.isdigit() else None
