#!/usr/bin/env bash
# Issue 16 on the GPU machine: tune the batch-invariant GEMM tables for this GPU with `precdiff kernels tune`,
# then measure GEMM vs cuBLAS and the 8B-shaped end-to-end cost with the tuned table, in one run.
# Usage (repo root, GPU machine): OUT=dir bash benchmarks/h200_tune_and_measure.sh
set -uo pipefail
out=${OUT:?set OUT to an output folder}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 PRECDIFF_CACHE_DIR=/tmp/precdiff_cache
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
timeout 330 python -m precdiff kernels tune --dtypes bf16 2>&1 | tee "$out/tune.log"
cp /tmp/precdiff_cache/gemm_tiles/*.json "$out/" 2>/dev/null
timeout 120 python benchmarks/gemm_batch_invariant.py --dtypes bf16 --out "$out/gemm_h200.json" 2>&1 | tee "$out/gemm.log"
timeout 150 python benchmarks/e2e_batch_invariant.py --runs 5 --out "$out/e2e_h200.json" 2>&1 | tail -n 20 | tee "$out/e2e.log"
