"""A synthetic compare JSON document shaped like docs/compare-json.md, sized like a real model.

The numbers are made up but deterministic; the optional fields other features add are included when
``optional`` is true (docs/html-report.md lists them).
"""

from __future__ import annotations

import math
from typing import Any

# Module outputs of one Llama decoder layer at module level, in forward order: 13 per layer.
LLAMA_KINDS = (
    "input_layernorm",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "self_attn[0]",
    "post_attention_layernorm",
    "mlp.gate_proj",
    "mlp.act_fn",
    "mlp.up_proj",
    "mlp.down_proj",
    "mlp",
    "",
)
FLOOR = 0.03125


def _error(layer: int, k: int, jump: int) -> float:
    base = 4e-3 * (1.08**layer) * (1 + 0.1 * k)
    return base * (40 if layer == jump and k >= 9 else (3 if layer > jump else 1))


def _tensor(name: str, layer: int | None, rel: float, dim: int = 4096) -> dict[str, Any]:
    return {
        "name": name,
        "module": name.split("[")[0],
        "role": "output",
        "layer": layer,
        "status": "compared",
        "dtype_a": "F32",
        "dtype_b": "BF16",
        "shape_a": [1, 128, dim],
        "shape_b": [1, 128, dim],
        "numel": 128 * dim,
        "rel_l2": rel,
        "cosine": 1 - rel * rel / 2,
        "max_abs": rel * 3.7,
        "mean_abs": rel * 0.2,
        "frac_beyond": min(1.0, rel * 9),
        "n_unequal": 128 * dim,
        "nan_a": 0,
        "nan_b": 0,
        "inf_a": 0,
        "inf_b": 0,
        "nonfinite_mismatch": 0,
        "tolerance": {"rtol": 0.0078125, "atol": 1e-05},
        "noise_floor": FLOOR,
        "exact": False,
        "above_floor": rel > FLOOR,
        "token_aligned": True,
        "layer_output": name == f"model.layers.{layer}",
        "rel_l2_unflipped": None,
        "tokens_flipped": 0,
    }


def compare_document(
    layers: int = 32, tokens: int = 128, jump: int = 17, optional: bool = True
) -> dict[str, Any]:
    """A module-level compare of a ``layers``-layer Llama (13 tensors per layer + 4 outside)."""
    tensors = [_tensor("model.embed_tokens", None, 1.5e-3)]
    stages = [{"index": -1, "label": "embeddings", "output": "model.embed_tokens", "rel_l2": 1.5e-3}]
    for layer in range(layers):
        rels = [_error(layer, k, jump) for k in range(len(LLAMA_KINDS))]
        for kind, rel in zip(LLAMA_KINDS, rels):
            name = f"model.layers.{layer}" + (f".{kind}" if kind else "")
            tensors.append(_tensor(name, layer, rel))
        stages.append(
            {
                "index": layer,
                "label": f"layer {layer}",
                "output": f"model.layers.{layer}",
                "rel_l2": rels[-1],
                "max_rel_l2": max(rels),
                "worst": f"model.layers.{layer}.mlp.down_proj",
            }
        )
    tail = [("model.norm", 0.02), ("lm_head", 0.021), ("model[last_hidden_state]", 0.02)]
    tensors += [_tensor(name, None, rel) for name, rel in tail]
    stages.append({"index": layers, "label": "head", "output": "lm_head", "rel_l2": 0.021})
    for i, stage in enumerate(stages):
        previous = stages[i - 1]["rel_l2"] if i else 0.0
        stage.setdefault("max_rel_l2", stage["rel_l2"])
        stage.setdefault("worst", stage["output"])
        stage.update(
            cosine=1 - stage["rel_l2"] ** 2 / 2,
            received=previous,
            noise_floor=FLOOR,
            growth=stage["max_rel_l2"] / max(previous, FLOOR),
            above_floor=stage["max_rel_l2"] > FLOOR,
            discrete_flip=None,
        )
    ranked = sorted(tensors, key=lambda t: -t["rel_l2"])
    document: dict[str, Any] = {
        "schema_version": 1,
        "precdiff_version": "0.1.0",
        "verdict": {
            "status": "diverged",
            "message": f"divergence jumps at layer {jump} in model.layers.{jump}.mlp.up_proj",
            "reason": "jump",
            "layer": jump,
            "module": f"model.layers.{jump}.mlp.up_proj",
            "tensor": f"model.layers.{jump}.mlp.up_proj",
            "rel_l2": 0.3,
            "cosine": 0.95,
            "received_rel_l2": 0.01,
            "growth": 30.0,
            "layer_growth": 30.0,
            "noise_floor": FLOOR,
        },
        "captures": {
            "a": {"path": "ref.h5", "complete": True, "dtype": "float32", "device": "cpu"},
            "b": {"path": "gpu.h5", "complete": True, "dtype": "bfloat16", "device": "cuda:0 (NVIDIA H100)"},
        },
        "comparability": {
            "forced": False,
            "differences": [
                {"field": "dtype", "a": "float32", "b": "bfloat16", "severity": "warn"},
                {"field": "device.type", "a": "cpu", "b": "cuda", "severity": "warn"},
                {"field": "versions.torch", "a": "2.13.0+cpu", "b": "2.13.0+cu128", "severity": "warn"},
                {"field": "host", "a": "laptop", "b": "gpu-node-3", "severity": "info"},
            ],
        },
        "warnings": [],
        "layers": stages,
        "tensors": tensors,
        "top": [t["name"] for t in ranked[:10]],
        "unmatched": {"a_only": [], "b_only": ["model.rotary_emb[1]"]},
        "logprobs": {
            "positions": tokens,
            "k_a": 20,
            "k_b": 20,
            "kl_mean": 2e-4,
            "kl_max": 3e-3,
            "kl_max_position": 7,
            "top1_agreement": 0.97,
            "max_abs_delta": 0.08,
            "max_abs_delta_position": 7,
            "exact": False,
            "kl": [1e-5 * (1 + math.sin(i) ** 2) * (30 if i == 7 else 1) for i in range(tokens)],
            "topk_overlap_k": 20,
            "topk_overlap_mean": 0.97,
            "topk_overlap_min": 0.8,
            "chosen_delta_max_abs": 0.05,
            "start_position": 0,
            "listed_positions": tokens,
            "chosen_ids": [100 + i for i in range(tokens)],
            "chosen_tokens": None,
            # Unknown (the next token outside a side's top-k) at every fifth position: a gap in the curve.
            "chosen_delta": [None if i % 5 == 4 else 1e-3 * math.cos(i) for i in range(tokens)],
            "topk_overlap": [0.8 if i == 7 else 1.0 for i in range(tokens)],
        },
        "generation": {
            "steps_a": 16,
            "steps_b": 16,
            "identical_prefix": 5,
            "first_divergent_step": 5,
            "token_a": 264,
            "token_b": 279,
            "margin_a": 0.03,
            "margin_b": 0.0,
            "near_tie": True,
            "near_tie_threshold": 0.0625,
            "near_tie_rule": "both margins ≤ max(0.01, 16·u(BF16)) = 0.0625 nats (no top logit stored)",
            "exact": False,
            "ids_a": [300 + i for i in range(16)],
            "ids_b": [300 + i for i in range(5)] + [400 + i for i in range(5, 16)],
            "tokens_a": None,
            "tokens_b": None,
        },
        "prompt_tokens": None,
    }
    if optional:
        words = [f"tok{i}" if i % 7 else " the" for i in range(tokens)]
        document["verdict"].update(
            op=f"model.layers.{jump}.mlp.up_proj/aten.mm.default#0",
            who_is_wrong="B",
            who_message="B is 40× further from the float64 reference than bf16 explains",
        )
        document["prompt_tokens"] = words
        document["logprobs"]["chosen_tokens"] = words[1:] + ["<|eot_id|>"]
        document["generation"].update(
            tokens_a=[f" w{i}" for i in range(15)] + ["<|eot_id|>"],
            tokens_b=[f" w{i}" for i in range(5)] + [f" v{i}" for i in range(5, 15)] + ["\n"],
            margin_a_ulps=0.5,
            margin_b_ulps=0.0,
        )
        document["token_errors"] = {
            "token_ids": [100 + i for i in range(tokens)],
            "stages": [
                {
                    "label": f"layer {layer}",
                    "output": f"model.layers.{layer}",
                    "rel_l2": [
                        _error(layer, 9, jump) * (0.05 if t == 0 else 1 + (t % 5) / 5) for t in range(tokens)
                    ],
                }
                for layer in range(layers)
            ],
        }
        document["massive_tokens"] = [
            {"position": 0, "token_id": 1, "token_text": "<s>", "norm_ratio": 812.5, "first_stage": "layer 2"}
        ]
        document["captures"]["b"].update(kind="engine", engine="vllm")
        document["new_field_from_the_future"] = {"anything": [1, 2, 3]}
    return document
