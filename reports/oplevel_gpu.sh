#!/usr/bin/env bash
# Op level across hardware (issue 9): a random-initialised Llama-shaped ~1.1B model, seeded, captured at
# --level op on the GPU machine's CPU in float32 and on its GPU in bfloat16 with the same tokens, then
# compared there (op graphs differ: e.g. the bf16 RMSNorm's _to_copy ops, CPU vs CUDA SDPA kernels).
# Usage (GPU machine, repository root):  PYTHONPATH=$PWD bash reports/oplevel_gpu.sh "$OUT"
# Writes summaries (.txt) and compare JSON into OUT; the lead commits them under reports/.
set -euo pipefail
out=${1:?usage: oplevel_gpu.sh OUT_DIR}
work=${WORK:-/tmp/precdiff_oplevel_1b}
mkdir -p "$out" "$work"
export COLUMNS=160
# Peak RSS per capture where GNU time exists; plain bash timing otherwise.
if [ -x /usr/bin/time ]; then TIMER="/usr/bin/time -v"; else TIMER=""; fi
python -m precdiff tiny save llama "$work/llama1b" --set hidden_size=2048 --set num_hidden_layers=16 \
  --set intermediate_size=8192 --set num_attention_heads=16 --set num_key_value_heads=8 --set vocab_size=32000
prompt="The same model, weights and prompt produce different tokens on CUDA, Ascend and CPU because"
cap() { # name device dtype extra...
  local name=$1 device=$2 dtype=$3; shift 3
  $TIMER python -m precdiff capture "$work/llama1b" --out "$work/$name.h5" --device "$device" \
    --dtype "$dtype" --level op --max-new-tokens 8 "$@" 2> "$out/time_$name.txt" | tee "$out/capture_$name.txt"
}
cap cpu_fp32 cpu float32 --prompt "$prompt"
cap cuda_bf16 cuda bfloat16 --tokens-from "$work/cpu_fp32.h5"
cap cuda_bf16_summary cuda bfloat16 --summary --tokens-from "$work/cpu_fp32.h5"
cap cuda_fp32 cuda float32 --tokens-from "$work/cpu_fp32.h5"
status=0
for b in cuda_bf16 cuda_fp32 cuda_bf16_summary; do
  python -m precdiff compare "$work/cpu_fp32.h5" "$work/$b.h5" --json "$out/cpu_fp32_vs_$b.json" \
    --html "$out/cpu_fp32_vs_$b.html" | tee "$out/cpu_fp32_vs_$b.txt" || status=$?
done
python -m precdiff inspect "$work/cuda_bf16.h5" > "$out/inspect_cuda_bf16.txt" || true
ls -la "$work" > "$out/files.txt"
echo "compare exit status (last non-zero): $status"
