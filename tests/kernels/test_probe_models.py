"""Probe-sequence invariance on tiny dense (Llama) and MoE (Qwen2-MoE) models, CPU.

A probe sequence is run alone, inside batches of 2/4/8 random sequences of the same length (at the
first and last slot), left-padded inside a batch with a longer sequence (explicit position ids),
and token by token (prefill of all but the last token, then one decode step with the KV cache).
The probe's last-position logits and final hidden state are compared bitwise with the probe run
alone. Batch-invariant mode must show none; the same model with one module made batch dependent by
construction (``planted.py``) must show differences under the same mode, so the test can fail on any CPU
(whether the standard kernels differ depends on the CPU).
"""

from __future__ import annotations

import pytest
import torch
from planted import plant_batch_dependent
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2MoeConfig, Qwen2MoeForCausalLM

from precdiff.capture.kv_cache import cache_kwargs, returned_cache
from precdiff.kernels import ATTENTION_IMPLEMENTATION, batch_invariant_mode, register_attention

VOCAB = 256
PROBE_LEN = 20


def _dense() -> PreTrainedModel:
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(cfg)


def _moe() -> PreTrainedModel:
    cfg = Qwen2MoeConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=64,
        num_experts=4,
        num_experts_per_tok=2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return Qwen2MoeForCausalLM(cfg)


def _probe_runs(model: PreTrainedModel) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Scenario name -> (last logits [V], last hidden state [H]) of the probe."""
    gen = torch.Generator().manual_seed(1)
    probe = torch.randint(0, VOCAB, (PROBE_LEN,), generator=gen)
    runs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def last(ids: torch.Tensor, row: int, **kw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(ids, output_hidden_states=True, **kw)
        return out.logits[row, -1].clone(), out.hidden_states[-1][row, -1].clone()

    with torch.no_grad():
        runs["alone"] = last(probe[None], 0)
        for bs in (2, 4, 8):
            for row in (0, bs - 1):
                ids = torch.randint(0, VOCAB, (bs, PROBE_LEN), generator=gen)
                ids[row] = probe
                runs[f"batch{bs}_row{row}"] = last(ids, row)
        # Left padding: the probe (row 1) padded by 7 in front of a longer random sequence (row 0).
        pad = 7
        ids = torch.randint(0, VOCAB, (2, PROBE_LEN + pad), generator=gen)
        ids[1, pad:] = probe
        mask = torch.ones_like(ids)
        mask[1, :pad] = 0
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        runs["left_padded"] = last(ids, 1, attention_mask=mask, position_ids=pos)
        # Decode: prefill all but the last token, then one cached decode step.
        pre = model(probe[None, :-1], use_cache=True)
        out = model(
            probe[None, -1:],
            use_cache=True,
            output_hidden_states=True,
            **cache_kwargs(model, returned_cache(pre)),
        )
        runs["decode_step"] = (out.logits[0, -1].clone(), out.hidden_states[-1][0, -1].clone())
    return runs


def _differing(runs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[str]:
    ref = runs["alone"]
    return [
        name for name, (lg, hs) in runs.items() if not (torch.equal(lg, ref[0]) and torch.equal(hs, ref[1]))
    ]


@pytest.mark.parametrize("build", [_dense, _moe], ids=["dense", "moe"])
def test_probe_is_batch_invariant_only_in_batch_invariant_mode(build: object) -> None:
    register_attention()
    torch.manual_seed(0)
    model = build().eval()  # type: ignore[operator]

    model.set_attn_implementation(ATTENTION_IMPLEMENTATION)
    with batch_invariant_mode("cpu"):
        invariant = _differing(_probe_runs(model))
    assert invariant == [], f"batch-invariant mode differs from the probe alone in {invariant}"

    plant_batch_dependent(model, "model.layers.0.input_layernorm")
    with batch_invariant_mode("cpu"):
        planted = _differing(_probe_runs(model))
    assert len(planted) == len(_probe_runs(model)) - 1, (
        f"the planted kernel was not seen in all runs: {planted}"
    )


def test_batch_invariant_logits_stay_close_to_standard() -> None:
    """Invariance must not cost accuracy: the probe's logits match standard mode to fp32 noise."""
    register_attention()
    torch.manual_seed(0)
    model = _dense().eval()
    ids = torch.randint(0, VOCAB, (3, PROBE_LEN), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(ids).logits
        model.set_attn_implementation(ATTENTION_IMPLEMENTATION)
        with batch_invariant_mode("cpu"):
            got = model(ids).logits
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
