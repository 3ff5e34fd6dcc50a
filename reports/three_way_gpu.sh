#!/usr/bin/env bash
# Three-way run (issue 12): a random-initialised Llama-shaped ~1.1B model (as in cross_hardware_1b.sh)
# captured on the GPU machine's CPU in float64 (the reference) and float32, and on its GPU in bfloat16
# with --save-inputs, all with the same tokens; then `compare CPU-fp32 GPU-bf16 --reference CPU-fp64`,
# and a replay on the GPU of the module furthest from the reference (with its reproducer, run on the
# GPU and on the CPU).
# Usage (repository root): PYTHONPATH=$PWD bash reports/three_way_gpu.sh "$OUT"
set -euo pipefail
out=${1:?usage: three_way_gpu.sh OUT_DIR}
work=${WORK:-/tmp/precdiff_three_way}
mkdir -p "$out" "$work"
export COLUMNS=140
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$out/steps.log"; }

log "build the model"
python -m precdiff tiny save llama "$work/llama1b" --set hidden_size=2048 --set num_hidden_layers=16 \
  --set intermediate_size=8192 --set num_attention_heads=16 --set num_key_value_heads=8 --set vocab_size=32000
prompt="The same model, weights and prompt produce different tokens on CUDA, Ascend and CPU because"
log "capture cpu float32"
start=$SECONDS
python -m precdiff capture "$work/llama1b" --out "$work/cpu_fp32.h5" --device cpu \
  --dtype float32 --prompt "$prompt" --max-new-tokens 8
echo "cpu float32 capture: $((SECONDS - start)) s" | tee -a "$out/steps.log"
log "capture cpu float64 (reference)"
start=$SECONDS
python -m precdiff capture "$work/llama1b" --out "$work/cpu_fp64.h5" --device cpu \
  --dtype float64 --tokens-from "$work/cpu_fp32.h5" --max-new-tokens 8
echo "cpu float64 capture: $((SECONDS - start)) s" | tee -a "$out/steps.log"
log "capture cuda bfloat16 with inputs"
python -m precdiff capture "$work/llama1b" --out "$work/cuda_bf16.h5" --device cuda --dtype bfloat16 \
  --tokens-from "$work/cpu_fp32.h5" --max-new-tokens 8 --save-inputs
ls -l "$work"/*.h5 | tee "$out/capture_sizes.txt"

status=0
log "compare cpu_fp32 cuda_bf16 --reference cpu_fp64"
python -m precdiff compare "$work/cpu_fp32.h5" "$work/cuda_bf16.h5" --reference "$work/cpu_fp64.h5" \
  --json "$out/three_way.json" --html "$out/three_way.html" | tee "$out/three_way.txt" || status=$?
echo "compare exit status: $status" | tee -a "$out/steps.log"

# The module (a leaf kind the reproducer can write out) whose GPU-bf16 output is furthest from float64.
worst=$(python - "$out/three_way.json" <<'PY'
import json, re, sys
rows = json.load(open(sys.argv[1]))["reference"]["modules"]
leaf = re.compile(r"(_proj|lm_head|\.mlp|self_attn|layernorm|\.norm)$")
rows = [r for r in rows if leaf.search(r["module"]) and r["b"]["ratio"] not in (None, "nan", "inf")]
print(max(rows, key=lambda r: float(r["b"]["ratio"]))["b"]["tensor"])
PY
)
echo "worst module output: $worst" | tee -a "$out/steps.log"
log "replay $worst on the GPU"
replay_status=0
python -m precdiff replay "$work/cuda_bf16.h5" --tensor "$worst" --device cuda --json "$out/replay_worst.json" \
  --emit-repro "$out/repro_worst" | tee "$out/replay_worst.txt" || replay_status=$?
echo "replay exit status: $replay_status" | tee -a "$out/steps.log"
log "the reproducer, standalone, on the GPU and on the CPU"
(cd "$out/repro_worst" && env -u PYTHONPATH python repro.py --device cuda | tee "$out/repro_worst_cuda.txt" \
  && env -u PYTHONPATH python repro.py --device cpu | tee "$out/repro_worst_cpu.txt")
log "replay the same module from the CPU float32 capture is not possible (no --save-inputs): expected one-line error"
python -m precdiff replay "$work/cpu_fp32.h5" --tensor "$worst" --device cuda 2> "$out/replay_no_inputs.txt" || true
python -m precdiff inspect "$work/cpu_fp64.h5" > "$out/inspect_cpu_fp64.txt" || true
log "done"
