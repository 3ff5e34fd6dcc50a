#!/usr/bin/env bash
# The GPU-machine runs of 2026-12-01 in one call (issues 9, 10, 12, 15): each step has its own time limit
# and writes into /tmp/gpuout; everything small (no .h5, no .safetensors) comes back as $OUT/results.tgz.
# Before: .big/smollm2.gguf.part00 copied to /tmp/gguf/ by an earlier call, part01 and .whl carried now.
# Usage (repo root, GPU machine): OUT=dir bash reports/gpu_batch_2026-12-01.sh
set -uo pipefail
out=${OUT:?set OUT}
res=/tmp/gpuout; mkdir -p "$res" .gl
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$res/steps.log"; }
finish() { tar czf "$out/results.tgz" --exclude='*.h5' --exclude='*.safetensors' --exclude='*.partial' -C "$res" . ; }
trap finish EXIT

step "setup: gguf wheel, GGUF file"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
cat /tmp/gguf/smollm2.gguf.part00 .big/smollm2.gguf.part01 > .gl/SmolLM2-135M-Instruct.Q4_1.gguf
(cd .gl && sha256sum SmolLM2-135M-Instruct.Q4_1.gguf) | tee -a "$res/steps.log"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$res/steps.log"

step "sensitivity (CPU cores 8-15, background)"
mkdir -p "$res/sensitivity"
OMP_NUM_THREADS=8 timeout 540 taskset -c 8-15 python -u reports/smollm2_sensitivity.py --prompts 64 --holdout 16 \
  --max-tokens 64 --new-tokens 8 --gguf .gl/SmolLM2-135M-Instruct.Q4_1.gguf --out "$res/sensitivity" \
  > "$res/sensitivity/run.log" 2>&1 &
sens=$!

export OMP_NUM_THREADS=8
step "smollm2 CPU fp32 vs H200 fp32/bf16 (issue 10)"
OUT=$res/smollm2_gpu timeout 150 taskset -c 0-7 bash reports/smollm2_gpu.sh > "$res/smollm2_gpu.log" 2>&1; echo "exit $?" >> "$res/steps.log"
step "op level 1B CPU fp32 vs GPU bf16 (issue 9)"
timeout 200 taskset -c 0-7 bash reports/oplevel_gpu.sh "$res/oplevel" > "$res/oplevel.log" 2>&1; echo "exit $?" >> "$res/steps.log"
step "three-way 1B fp64/fp32/bf16 + replay (issue 12)"
timeout 150 taskset -c 0-7 bash reports/three_way_gpu.sh "$res/three_way" > "$res/three_way.log" 2>&1; echo "exit $?" >> "$res/steps.log"
step "op-level capture overhead benchmark (issue 9)"
timeout 110 taskset -c 0-7 python benchmarks/op_capture_overhead.py --device cuda --repeats 3 \
  --out "$res/op_capture_overhead_h200.json" > "$res/op_capture_overhead.log" 2>&1; echo "exit $?" >> "$res/steps.log"
step "wait for sensitivity"
wait $sens; echo "sensitivity exit $?" >> "$res/steps.log"
step "done"
