#!/usr/bin/env bash
# Second GPU call of 2026-12-01 on the merged code: SmolLM2 CPU vs H200 (issue 10), the GPU test suites,
# and round 2 of `precdiff kernels tune` with the GEMM and end-to-end benchmarks (issue 16).
# Before: .big/smollm2.gguf.part00 copied to /tmp/gguf/ by an earlier call; part01 and .whl carried now.
# Usage (repo root, GPU machine): OUT=dir bash reports/gpu_batch_2026-12-01_b.sh
set -uo pipefail
out=${OUT:?set OUT}
res=/tmp/gpuout_b; mkdir -p "$res" .gl
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PRECDIFF_CACHE_DIR=/tmp/precdiff_cache
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$res/steps.log"; }
finish() { tar czf "$out/results.tgz" --exclude='*.h5' --exclude='*.safetensors' --exclude='*.partial' -C "$res" . ; }
trap finish EXIT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
cat /tmp/gguf/smollm2.gguf.part00 .big/smollm2.gguf.part01 > .gl/SmolLM2-135M-Instruct.Q4_1.gguf
step "smollm2 CPU fp32 vs H200 fp32/bf16"
OUT=$res/smollm2_gpu timeout 150 bash reports/smollm2_gpu.sh > "$res/smollm2_gpu.log" 2>&1; echo "exit $?" >> "$res/steps.log"
step "GPU test suites"
timeout 220 python -m pytest -q -p no:cacheprovider ${GPU_TESTS:-tests/gpu} -x > "$res/gpu_tests.log" 2>&1; echo "exit $?" >> "$res/steps.log"
tail -3 "$res/gpu_tests.log" >> "$res/steps.log"
step "kernels tune round 2 (46 bf16 candidates) + GEMM + e2e"
timeout 120 python -m precdiff kernels tune --dtypes bf16 > "$res/tune.log" 2>&1; echo "exit $?" >> "$res/steps.log"
cp /tmp/precdiff_cache/gemm_tiles/*.json "$res/" 2>/dev/null
timeout 60 python benchmarks/gemm_batch_invariant.py --dtypes bf16 --out "$res/gemm_h200.json" > "$res/gemm.log" 2>&1
timeout 90 python benchmarks/e2e_batch_invariant.py --runs 5 --out "$res/e2e_h200.json" > "$res/e2e.log" 2>&1
step "done"
