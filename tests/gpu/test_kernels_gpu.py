"""GPU checks of the batch-invariant Triton kernels (run with the device tool, never in CI).

Run: ``python -m pytest tests/gpu/test_kernels_gpu.py -q -rA``. Every invariance check is bitwise:
a row computed inside an M-row call must equal the same row computed inside the largest call, for
every M in the sweep (1..64 one by one, then odd and power-of-two sizes up to 2048).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from precdiff.capture.kv_cache import cache_kwargs, returned_cache

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

M_SWEEP = sorted(set(range(1, 65)) | {97, 128, 129, 255, 256, 511, 512, 777, 1024, 1500, 2047, 2048})
SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096)]
TOL = {torch.bfloat16: 2e-2, torch.float32: 1e-5}  # max |err| / max |ref| against float64


def _rows_invariant(fn, x: torch.Tensor) -> list[int]:  # type: ignore[no-untyped-def]
    """M values for which fn(x[:M]) differs bitwise from fn(x)[:M]."""
    full = fn(x)
    return [m for m in M_SWEEP if m <= x.shape[0] and not torch.equal(fn(x[:m]), full[:m])]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("k,n", SHAPES, ids=[f"K{k}_N{n}" for k, n in SHAPES])
def test_mm_rows_bitwise_invariant_over_m(dtype: torch.dtype, k: int, n: int) -> None:
    from precdiff.kernels import batch_invariant_mode

    torch.manual_seed(0)
    x = torch.randn(2048, k, device="cuda", dtype=dtype)
    w = torch.randn(n, k, device="cuda", dtype=dtype) / k**0.5  # Linear layout: y = x @ w.T
    bias = torch.randn(n, device="cuda", dtype=dtype)
    standard = _rows_invariant(lambda t: t @ w.t(), x)
    with batch_invariant_mode("cuda"):
        ours_mm = _rows_invariant(lambda t: t @ w.t(), x)
        ours_addmm = _rows_invariant(lambda t: torch.nn.functional.linear(t, w, bias), x)
        got = x[:300] @ w.t()
    print(f"{dtype} K={k} N={n}: cuBLAS differs at {len(standard)} of {len(M_SWEEP)} M values")
    assert ours_mm == [] and ours_addmm == []
    ref = x[:300].double() @ w.t().double()
    assert ((got.double() - ref).abs().max() / ref.abs().max()).item() < TOL[dtype]


# Tuned shapes, an untuned shape served by the nearest tuned one, and a ragged K (TMA zero-fill path).
TILE_SHAPES = [(4096, 4096), (4096, 1024), (2048, 5632), (2000, 1504)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("k,n", TILE_SHAPES, ids=[f"K{k}_N{n}" for k, n in TILE_SHAPES])
def test_every_shipped_tile_config_gives_the_same_bits(dtype: torch.dtype, k: int, n: int) -> None:
    """Tile choice per (M, K, N) is only sound if every config the tables can return agrees bitwise."""
    from precdiff.kernels import gemm_tiles, triton_gemm

    torch.manual_seed(0)
    x = torch.randn(1024, k, device="cuda", dtype=dtype)
    w = torch.randn(n, k, device="cuda", dtype=dtype) / k**0.5
    configs = gemm_tiles.all_configs(gemm_tiles.kind_of(dtype == torch.float32))
    ref = triton_gemm.matmul(x, w.t(), config=configs[0])
    bad = {
        str(c): m
        for c in configs
        for m in (1, 7, 16, 33, 64, 100, 256, 1024)
        if not torch.equal(triton_gemm.matmul(x[:m], w.t(), config=c), ref[:m])
    }
    assert bad == {}, f"{len(configs)} configs, differing (config: first M): {bad}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_bmm_and_grouped_mm_invariant(dtype: torch.dtype) -> None:
    from precdiff.kernels import batch_invariant_mode

    torch.manual_seed(0)
    a = torch.randn(8, 512, 128, device="cuda", dtype=dtype)
    b = torch.randn(8, 128, 512, device="cuda", dtype=dtype)
    experts = torch.randn(4, 1024, 256, device="cuda", dtype=dtype) / 32
    with batch_invariant_mode("cuda"):
        full_bmm = torch.bmm(a, b)
        bad = [m for m in M_SWEEP if m <= 512 and not torch.equal(torch.bmm(a[:, :m], b), full_bmm[:, :m])]
        assert bad == []
        x = torch.randn(600, 1024, device="cuda", dtype=dtype)
        full = torch._grouped_mm(
            x, experts, offs=torch.tensor([100, 100, 350, 600], device="cuda", dtype=torch.int32)
        )
        part = torch._grouped_mm(
            x[100:110], experts[2:3], offs=torch.tensor([10], device="cuda", dtype=torch.int32)
        )
    assert torch.equal(full[100:110], part)
    ref = x[100:110].double() @ experts[2].double()
    assert ((part.double() - ref).abs().max() / ref.abs().max()).item() < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("width", [64, 4096, 128256], ids=["w64", "w4096", "vocab"])
def test_row_reductions_and_softmax_invariant(dtype: torch.dtype, width: int) -> None:
    from precdiff.kernels import batch_invariant_mode

    torch.manual_seed(0)
    x = torch.randn(512 if width > 4096 else 2048, width, device="cuda", dtype=dtype) * 3
    fns = {
        "rmsnorm_mean": lambda t: t.float().pow(2).mean(-1, keepdim=True),
        "sum": lambda t: t.sum(-1),
        "softmax": lambda t: torch.softmax(t, -1),
        "log_softmax": lambda t: torch.log_softmax(t.float(), -1),
    }
    with batch_invariant_mode("cuda"):
        bad = {name: _rows_invariant(fn, x) for name, fn in fns.items()}
        got = torch.log_softmax(x[:64].float(), -1)
    assert all(v == [] for v in bad.values()), bad
    ref = torch.log_softmax(x[:64].double(), -1)
    assert (got.double() - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_attention_prefill_decode_padding_invariant(dtype: torch.dtype) -> None:
    from precdiff.kernels.attention import batch_invariant_attention

    class _Mod(torch.nn.Module):
        is_causal = True
        num_key_value_groups = 4

    torch.manual_seed(0)
    h, hk, d, length, pad = 32, 8, 128, 300, 37
    q = torch.randn(1, h, length, d, device="cuda", dtype=dtype)
    k = torch.randn(1, hk, length, d, device="cuda", dtype=dtype)
    v = torch.randn(1, hk, length, d, device="cuda", dtype=dtype)
    mod = _Mod()
    prefill, _ = batch_invariant_attention(mod, q, k, v, None)  # [1, L, H, D]
    # Decode of each of the last 5 positions with a cache of exactly that length.
    for p in range(length - 5, length):
        dec, _ = batch_invariant_attention(mod, q[:, :, p : p + 1], k[:, :, : p + 1], v[:, :, : p + 1], None)
        assert torch.equal(dec[0, 0], prefill[0, p])
    # Left-padded inside a batch of 3 with other random sequences, boolean causal+padding mask.
    qb = torch.randn(3, h, length + pad, d, device="cuda", dtype=dtype)
    kb, vb = torch.randn_like(qb[:, :hk]), torch.randn_like(qb[:, :hk])
    qb[1, :, pad:], kb[1, :, pad:], vb[1, :, pad:] = q[0], k[0], v[0]
    causal = torch.tril(torch.ones(length + pad, length + pad, dtype=torch.bool, device="cuda"))
    keep = torch.ones(3, length + pad, dtype=torch.bool, device="cuda")
    keep[1, :pad] = False
    mask = causal[None, None] & keep[:, None, None, :]
    batched, _ = batch_invariant_attention(mod, qb, kb, vb, mask)
    assert torch.equal(batched[1, pad:], prefill[0])
    kr, vr = k.repeat_interleave(4, 1).double(), v.repeat_interleave(4, 1).double()
    ref = torch.nn.functional.scaled_dot_product_attention(q.double(), kr, vr, is_causal=True).transpose(1, 2)
    assert (prefill.double() - ref).abs().max().item() < TOL[dtype] * 2


@pytest.mark.parametrize("moe", [False, True], ids=["dense", "moe"])
def test_tiny_model_probe_invariant_bf16(moe: bool) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM

    from precdiff.kernels import ATTENTION_IMPLEMENTATION, batch_invariant_mode, register_attention

    register_attention()
    torch.manual_seed(0)
    common = {
        "vocab_size": 1024,
        "hidden_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
    }
    if moe:
        model = Qwen2MoeForCausalLM(
            Qwen2MoeConfig(
                intermediate_size=512,
                moe_intermediate_size=128,
                shared_expert_intermediate_size=256,
                num_experts=8,
                num_experts_per_tok=2,
                **common,
            )
        )
    else:
        model = LlamaForCausalLM(LlamaConfig(intermediate_size=512, **common))
    model = model.to("cuda", torch.bfloat16).eval()
    model.set_attn_implementation(ATTENTION_IMPLEMENTATION)
    gen = torch.Generator(device="cuda").manual_seed(1)
    probe = torch.randint(0, 1024, (100,), device="cuda", generator=gen)
    outs = []
    with torch.no_grad(), batch_invariant_mode("cuda"):
        outs.append(model(probe[None]).logits[0, -1])
        for bs in (2, 4, 8):
            ids = torch.randint(0, 1024, (bs, 100), device="cuda", generator=gen)
            ids[bs - 1] = probe
            outs.append(model(ids).logits[bs - 1, -1])
        pre = model(probe[None, :-1], use_cache=True)
        outs.append(model(probe[None, -1:], **cache_kwargs(model, returned_cache(pre))).logits[0, -1])
    assert all(torch.equal(o, outs[0]) for o in outs[1:])


def test_mode_restores_flags_after_exception() -> None:
    from precdiff.kernels import active_dispatch_keys, batch_invariant_mode

    before = torch.backends.cuda.flash_sdp_enabled()
    with pytest.raises(RuntimeError, match="boom"), batch_invariant_mode("cuda") as settings:
        assert settings.backend == "triton"
        raise RuntimeError("boom")
    assert torch.backends.cuda.flash_sdp_enabled() == before and active_dispatch_keys() == {}


def test_launch_cache_reuses_kernels_only_for_matching_signatures() -> None:
    """The direct launch path (triton_launch) must give what a fresh ``kernel[grid]`` launch gives,
    including for a misaligned operand, which Triton specialises differently."""
    from precdiff.kernels import triton_gemm, triton_launch

    torch.manual_seed(0)
    triton_launch.clear()
    w = torch.randn(256, 128, device="cuda", dtype=torch.bfloat16)
    buf = torch.randn(3 * 128 + 1, device="cuda", dtype=torch.bfloat16)
    aligned, misaligned = buf[:384].view(3, 128), buf[1:385].view(3, 128)  # data_ptr % 16 == 2
    results = []
    for _ in range(3):  # first call compiles and caches, the next two take the direct path
        results.append((triton_gemm.matmul(aligned, w.t()), triton_gemm.matmul(misaligned, w.t())))
    assert len(triton_launch._cache) == 2
    for got_aligned, got_misaligned in results:
        assert torch.equal(got_aligned, results[0][0]) and torch.equal(got_misaligned, results[0][1])
    ref = misaligned.double() @ w.t().double()
    assert ((results[2][1].double() - ref).abs().max() / ref.abs().max()).item() < TOL[torch.bfloat16]
    assert torch.equal(triton_gemm.matmul(misaligned.contiguous(), w.t()), results[0][1])


def test_kernels_tune_writes_a_table_the_mode_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small tuning run: every kept config is bit-identical, and the written table is what select uses."""
    from precdiff.kernels import gemm_tiles, tile_tables
    from precdiff.kernels.tune import TuneOptions, tune

    monkeypatch.setenv("PRECDIFF_CACHE_DIR", str(tmp_path))
    tile_tables.for_device.cache_clear()
    result = tune(TuneOptions(dtypes=("bf16",), shapes=((1024, 1024),), ms=(1, 64, 512)))
    assert result.path.is_file() and result.identical["half"] >= 1
    name, capability = torch.cuda.get_device_name(), torch.cuda.get_device_capability()
    table = tile_tables.for_device(name, capability)
    assert table is not None and (1024, 1024) in table.tables["half"]
    chosen = gemm_tiles.select(64, 1024, 1024, "half", capability, name)
    assert chosen in {cfg for _, cfg in table.tables["half"][(1024, 1024)]} | {
        gemm_tiles.runs_as(cfg, 64) for _, cfg in table.tables["half"][(1024, 1024)]
    }
