"""Synthetic invariance, determinism and tokens JSON documents shaped like docs/*-json.md.

The numbers are made up but deterministic; they follow the schemas so the renderers see what a real
run writes (the compare document is in sample_compare.py).
"""

from __future__ import annotations

from typing import Any


def invariance_document(
    tensors: int = 60, sizes: tuple[int, ...] = (2, 8), level: str = "module"
) -> dict[str, Any]:
    rows = []
    for i in range(tensors):
        checks = []
        for size in sizes:
            ulp = 0 if i < tensors // 3 else (i % 7) * size
            checks.append(
                {
                    "batch_size": size,
                    "aligned": True,
                    "note": None,
                    "bitwise_equal": ulp == 0,
                    "max_ulp": ulp,
                    "max_abs_diff": ulp * 1e-7,
                    "nonfinite_mismatches": 0,
                    "differing": ulp * 3,
                    "elements": 4096,
                }
            )
        rows.append(
            {
                "name": f"model.layers.{i // 5}.t{i % 5}",
                "scope": f"model.layers.{i // 5}",
                "op": None,
                "dtype": "float32",
                "shape": [1, 8, 64],
                "counted": True,
                "aligned": True,
                "invariant": all(c["bitwise_equal"] for c in checks),
                "max_ulp": max(c["max_ulp"] for c in checks),
                "checks": checks,
            }
        )
    first = next((r["name"] for r in rows if not r["invariant"]), None)
    diff = {
        "bitwise_equal": False,
        "max_ulp": 3,
        "max_abs_diff": 2e-7,
        "nonfinite_mismatches": 0,
        "differing": 5,
        "elements": 100,
    }
    return {
        "schema": "precdiff.invariance",
        "schema_version": 1,
        "invariant": False,
        "batch_invariant": False,
        "prefill_decode_consistent": False,
        "first_non_invariant": first,
        "first_non_invariant_by_batch_size": {str(s): first for s in sizes},
        "level": level,
        "padding": "none",
        "batch_sizes": list(sizes),
        "run": {
            "model": "tiny:llama",
            "device": "cpu",
            "dtype": "float32",
            "kernels": "standard",
            "kernel_settings": None,
            "seed": 0,
            "versions": {"torch": "2.13.0"},
            "runtime_s": 1.0,
        },
        "probe": {"ids": [1, 2, 3], "text": "The quick brown fox", "length": 3},
        "summary": {
            "tensors": tensors,
            "non_invariant": sum(not r["invariant"] for r in rows),
            "not_aligned": 0,
            "unmatched": 0,
            "max_ulp": max(r["max_ulp"] for r in rows),
        },
        "outputs": [
            {
                "batch_size": s,
                "probe_slot": s // 2,
                "padded_length": 3,
                "logprobs": diff,
                "greedy_changed_positions": [2],
            }
            for s in sizes
        ],
        "prefill_vs_decode": [{"position": 2, "argmax_equal": True, **diff}],
        "tensors": rows,
        "unmatched": [],
    }


def determinism_document(completions: int = 3, runs: int = 20) -> dict[str, Any]:
    counts = [runs - 2 * (completions - 1)] + [2] * (completions - 1)
    items, start = [], 0
    for c, count in enumerate(counts):
        ids = [5, 6, 7, 8] + [9 + c, 10, 11]
        items.append(
            {
                "ids": ids,
                "text": " ".join(map(str, ids)),
                "count": count,
                "runs": list(range(start, start + count)),
            }
        )
        start += count
    records = [
        {
            "run": r,
            "batch_size": 1 + r % 9,
            "probe_slot": 0,
            "completion": next(i for i, c in enumerate(items) if r in c["runs"]),
        }
        for r in range(runs)
    ]
    return {
        "schema": "precdiff.determinism",
        "schema_version": 1,
        "deterministic": completions == 1,
        "unique_completions": completions,
        "first_divergence_step": 4 if completions > 1 else None,
        "runs": runs,
        "max_new_tokens": 7,
        "max_companions": 8,
        "run": {
            "model": "tiny:llama",
            "device": "cpu",
            "dtype": "bfloat16",
            "kernels": "standard",
            "kernel_settings": None,
            "seed": 0,
            "versions": {"torch": "2.13.0"},
            "runtime_s": 2.0,
        },
        "probe": {"ids": [1, 2, 3], "text": "The quick brown fox", "length": 3},
        "completions": items,
        "records": records,
    }


def tokens_document() -> dict[str, Any]:
    a_text = "<s><|user|>\nHi there<|end|>\n<|assistant|>\n"
    b_text = "<s><|user|>\nHi  there<|end|>\n"

    def side(label: str, text: str, ids: list[int]) -> dict[str, Any]:
        return {
            "label": label,
            "spec": f"dir{label}",
            "kind": "template",
            "text": text,
            "token_ids": ids,
            "text_origin": "rendered",
            "ids_origin": "tokenized",
            "tokenizer": {
                "source": "phi3",
                "class_name": "LlamaTokenizerFast",
                "vocab_size": 32011,
                "sha256": "ab" * 32,
                "bos_token": "<s>",
                "eos_token": "<|endoftext|>",
                "bos_token_id": 1,
                "eos_token_id": 32000,
            },
            "tokenizer_borrowed": False,
            "add_special_tokens": False,
            "add_generation_prompt": True,
            "template_sha256": "cd" * 32,
            "template_kwargs": {},
            "notes": [],
        }

    return {
        "schema": "precdiff.tokens",
        "schema_version": 1,
        "verdict": "different",
        "first_diff_char": 20,
        "first_diff_token": 4,
        "pitfalls": [
            {
                "name": "generation_prompt",
                "title": "generation prompt on one side only",
                "side": "A",
                "evidence": "A ends with the generation prompt '<|assistant|>↵'; B does not",
                "hint": "render both with add_generation_prompt=True",
            }
        ],
        "a": side("A", a_text, [1, 32010, 13, 6324, 727, 32007, 13, 32001, 13]),
        "b": side("B", b_text, [1, 32010, 13, 6324, 29871, 727, 32007, 13]),
        "window_a": {
            "start": 0,
            "end": len(a_text),
            "diff_at": 20,
            "shown": "",
            "segments": [
                {"kind": "special", "text": "<|user|>", "shown": "<|user|>"},
                {"kind": "special", "text": "<|assistant|>", "shown": "<|assistant|>"},
            ],
        },
        "window_b": None,
        "alignment": [
            {
                "op": "equal",
                "a_index": 3,
                "b_index": 3,
                "a_id": 6324,
                "b_id": 6324,
                "a_piece": "Hi",
                "b_piece": "Hi",
            },
            {
                "op": "insert",
                "a_index": None,
                "b_index": 4,
                "a_id": None,
                "b_id": 29871,
                "a_piece": None,
                "b_piece": "·",
            },
            {
                "op": "equal",
                "a_index": 4,
                "b_index": 5,
                "a_id": 727,
                "b_id": 727,
                "a_piece": "there",
                "b_piece": "there",
            },
            {
                "op": "delete",
                "a_index": 7,
                "b_index": None,
                "a_id": 32001,
                "b_id": None,
                "a_piece": "<|assistant|>",
                "b_piece": None,
            },
        ],
        "notes": ["B has no generation prompt"],
    }
