#!/usr/bin/env bash
# One real cross-hardware run (issue 2): a random-initialised Llama-shaped ~1.1B model captured on the
# GPU machine's CPU in float32, on its GPU in float32 and in bfloat16, with the same tokens; compared there.
# Usage: bash reports/cross_hardware_1b.sh OUT_DIR    (writes JSON + printed summaries into OUT_DIR)
set -euo pipefail
out=${1:?usage: cross_hardware_1b.sh OUT_DIR}
work=${WORK:-/tmp/precdiff_1b}
mkdir -p "$out" "$work"
export COLUMNS=120
python -m precdiff tiny save llama "$work/llama1b" --set hidden_size=2048 --set num_hidden_layers=16 \
  --set intermediate_size=8192 --set num_attention_heads=16 --set num_key_value_heads=8 --set vocab_size=32000
prompt="The same model, weights and prompt produce different tokens on CUDA, Ascend and CPU because"
python -m precdiff capture "$work/llama1b" --out "$work/cpu_fp32.h5" --device cpu --dtype float32 --prompt "$prompt"
python -m precdiff capture "$work/llama1b" --out "$work/cuda_fp32.h5" --device cuda --dtype float32 --tokens-from "$work/cpu_fp32.h5"
python -m precdiff capture "$work/llama1b" --out "$work/cuda_bf16.h5" --device cuda --dtype bfloat16 --tokens-from "$work/cpu_fp32.h5"
status=0
python -m precdiff compare "$work/cpu_fp32.h5" "$work/cuda_fp32.h5" --json "$out/cpu_fp32_vs_cuda_fp32.json" \
  --html "$out/cpu_fp32_vs_cuda_fp32.html" \
  | tee "$out/cpu_fp32_vs_cuda_fp32.txt" || status=$?
python -m precdiff compare "$work/cpu_fp32.h5" "$work/cuda_bf16.h5" --json "$out/cpu_fp32_vs_cuda_bf16.json" \
  --html "$out/cpu_fp32_vs_cuda_bf16.html" \
  | tee "$out/cpu_fp32_vs_cuda_bf16.txt" || status=$?
python -m precdiff inspect "$work/cuda_bf16.h5" > "$out/inspect_cuda_bf16.txt" || true
echo "compare exit status (last non-zero): $status"
