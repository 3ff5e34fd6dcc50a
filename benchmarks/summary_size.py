"""Size of a ``--summary`` capture against a full one, for the Llama-8B shape at 2,048 tokens.

A *real* summary capture is written (statistics, sketches, checksums, aliases, manifest, input ids,
prompt top-k logprobs, greedy generation) of a Llama-8B-shaped model with all 32 decoder layers. To fit
a CPU, the 32 layers share one layer's random weights and the embedding is tied to ``lm_head``: that
changes no captured tensor's name, shape or dtype, only the numbers, which a capture's *size* does not
depend on. It runs in float32 with a short prompt (a bf16 forward at 2,048 tokens takes hours on a
loaded 2-core CPU), at two prompt lengths, so that the only token-dependent parts (input ids, prompt
logprobs, ``[tokens, k]``) are extrapolated linearly to ``--target-tokens``.

The full capture's size at 2,048 tokens in bfloat16 is computed from the same index: every stored
(non-alias) tensor's elements × 2 bytes, its token axis scaled to ``--target-tokens``, plus HDF5's
per-dataset overhead, measured on a real full capture of the same model at the short prompt. It is
given with and without alias de-duplication (``alias_of`` rows store no data).

    python benchmarks/summary_size.py --out benchmarks/results/summary_size_8b.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import date
from pathlib import Path

import h5py
import numpy as np
import torch
import transformers
from capture_overhead import LLAMA_8B, prompt_ids

from precdiff.capture.environment import build_manifest
from precdiff.capture.hooks import attach
from precdiff.capture.kv_cache import returned_cache
from precdiff.capture.logits import greedy_generate, topk_logprobs
from precdiff.capture.models import LoadedModel
from precdiff.capture.names import name_filter
from precdiff.capture.sink import TensorSink
from precdiff.config import CaptureOptions
from precdiff.store import CaptureWriter
from precdiff.store import format as fmt


def shared_weight_model(layers: int) -> torch.nn.Module:
    """The Llama-8B shape with ``layers`` decoder layers sharing one layer's weights, embeddings tied."""
    config = transformers.LlamaConfig(
        **{**LLAMA_8B, "num_hidden_layers": layers, "tie_word_embeddings": True}
    )
    config._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)

    def real(p: torch.Tensor) -> torch.Tensor:
        return torch.ones(p.shape) if p.ndim == 1 else torch.randn(p.shape, generator=generator) * 0.02

    layer = {name: real(p) for name, p in model.model.layers[0].named_parameters()}
    for decoder in model.model.layers:
        decoder.load_state_dict(layer, assign=True)
    embedding = real(model.model.embed_tokens.weight)
    model.model.embed_tokens.weight = torch.nn.Parameter(embedding)
    model.lm_head.weight = model.model.embed_tokens.weight
    model.model.norm.weight = torch.nn.Parameter(torch.ones(LLAMA_8B["hidden_size"]))
    model.model.rotary_emb = type(model.model.rotary_emb)(config)  # its buffers were made on meta
    return model.eval()  # type: ignore[no-any-return]


def write_capture(model: torch.nn.Module, path: Path, tokens: int, summary: bool) -> None:
    """What ``precdiff capture`` writes, through the same writer, sink and hooks."""
    options = CaptureOptions(device="cpu", dtype="float32", summary=summary)
    ids = prompt_ids(tokens, torch.device("cpu"))
    loaded = LoadedModel(model, None, "llama-8b-shape", None, "model.layers", len(model.model.layers))  # type: ignore[arg-type]
    with CaptureWriter(path) as writer, torch.no_grad():
        manifest = build_manifest(
            loaded,
            options,
            torch.device("cpu"),
            input_source="input_ids",
            input_ids=ids[0].tolist(),
            kernel_settings=None,
            template_sha256=None,
        )
        writer.write_manifest(manifest)
        writer.write_input(ids[0].tolist(), None)
        sink = TensorSink(writer, summary=summary, device=torch.device("cpu"), num_tokens=tokens)
        with attach(model, name_filter(None, None), sink):
            out = model(input_ids=ids, use_cache=True)
        sink.flush()
        logits = out.logits[0]
        writer.write_prompt_logprobs(*topk_logprobs(logits, options.top_k))
        record = greedy_generate(
            model, logits[-1], returned_cache(out), tokens, options.max_new_tokens, options.top_k
        )
        writer.write_generation(
            record.ids, record.topk_ids, record.topk_logprobs, record.margin, record.top_logit
        )
        writer.finish()


def index_of(path: Path) -> np.ndarray:
    with h5py.File(path) as handle:
        return np.asarray(handle[fmt.TENSOR_INDEX][()])


def data_bytes(rows: np.ndarray, tokens: int, target_tokens: int, itemsize: int, aliases: bool) -> int:
    """Bytes of tensor data a full capture at ``target_tokens`` stores (token axes scaled)."""
    total = 0
    for row in rows:
        if row[fmt.T_ALIAS_OF] and not aliases:
            continue
        numel = int(row[fmt.T_NUMEL])
        if int(row[fmt.T_TOKEN_AXIS]) != fmt.NO_TOKEN_AXIS:
            numel = numel // tokens * target_tokens
        total += numel * itemsize
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tokens", type=int, nargs=2, default=(8, 16), help="two short prompt lengths")
    parser.add_argument("--target-tokens", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = shared_weight_model(args.layers)
    folder = Path(tempfile.mkdtemp())
    short, longer = args.tokens
    sizes = {}
    for tokens in (short, longer):
        path = folder / f"summary_{tokens}.h5"
        write_capture(model, path, tokens, summary=True)
        sizes[tokens] = path.stat().st_size
    rows = index_of(folder / f"summary_{short}.h5")
    # Token-dependent parts (input ids, prompt top-k) grow linearly: extrapolate from the two lengths.
    per_token = (sizes[longer] - sizes[short]) / (longer - short)
    summary = sizes[short] + per_token * (args.target_tokens - short)
    full_path = folder / f"full_{short}.h5"
    write_capture(model, full_path, short, summary=False)
    stored_fp32 = data_bytes(index_of(full_path), short, short, 4, aliases=False)
    overhead = full_path.stat().st_size - stored_fp32  # HDF5 metadata, index, manifest, logprobs…
    full = data_bytes(rows, short, args.target_tokens, 2, aliases=False) + overhead
    full_no_dedupe = data_bytes(rows, short, args.target_tokens, 2, aliases=True) + overhead
    report = {
        "benchmark": "summary_size",
        "date": date.today().isoformat(),
        "host": platform.node(),
        "torch": torch.__version__,
        "model": {
            "shape": "llama-8b",
            **LLAMA_8B,
            "num_hidden_layers": args.layers,
            "tie_word_embeddings": True,  # to fit the CPU; no captured tensor changes
            "layers_share_weights": True,
            "compute_dtype": "float32",
        },
        "target": {"tokens": args.target_tokens, "dtype": "bfloat16"},
        "tensors": len(rows),
        "aliases": int(sum(1 for r in rows if r[fmt.T_ALIAS_OF])),
        "measured": {
            "summary_bytes": {str(t): s for t, s in sizes.items()},
            "summary_bytes_per_prompt_token": per_token,
            "full_fp32_bytes_at_short_prompt": full_path.stat().st_size,
            "full_overhead_bytes": overhead,
        },
        "summary_bytes": round(summary),
        "full_bytes": full,
        "full_bytes_without_dedupe": full_no_dedupe,
        "summary_over_full": summary / full,
        "summary_over_full_without_dedupe": summary / full_no_dedupe,
        "dedupe_saves": 1.0 - full / full_no_dedupe,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
