#!/usr/bin/env bash
# Issue 4 on the GPU: `precdiff invariance` and `precdiff determinism` on a ~1B Llama-shaped model, bf16,
# with standard and batch-invariant kernels. Run with the device tool, never in CI:
#
#     bash tests/gpu/run_invariance_h100.sh tests/gpu/results/invariance
#
# Writes, under OUT_DIR: <run>.json (schemas in docs/invariance-json.md), <run>.txt (the printed report),
# summary.txt (one line per run with its exit code and headline) and env.txt. The model (4.6 GB of fp32
# safetensors) goes to MODEL_DIR (default: a temporary folder), never into OUT_DIR.
# Exit codes of the runs are recorded, not fatal: standard kernels are expected to exit 1.
# Budget: about 6 minutes on one H100 (6 model loads, 4 invariance runs, 2 x 100 generation runs).
# PARTS="invariance" or PARTS="determinism" runs one half (default: both).
set -uo pipefail

OUT_DIR=${1:?usage: run_invariance_h100.sh OUT_DIR}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 COLUMNS=160
MODEL_DIR=${MODEL_DIR:-$(mktemp -d)/llama-1b}
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  python -c "import sys, torch, transformers; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| cuda', torch.version.cuda, '| transformers', transformers.__version__)"
  python -c "import triton; print('triton', triton.__version__)" 2>&1
  git -C "$REPO" rev-parse HEAD 2>/dev/null || true
} > "$OUT_DIR/env.txt" 2>&1

run() {  # run NAME ARGS...: print + save the report, record exit code and wall time
  local name=$1; shift
  local start=$SECONDS
  python -m precdiff "$@" --json "$OUT_DIR/$name.json" > "$OUT_DIR/$name.txt" 2>&1
  local rc=$?
  local headline
  headline=$(grep -m1 -E "INVARIANT|DETERMINISTIC|Error" "$OUT_DIR/$name.txt" | tr -s ' ')
  echo "$name: exit $rc in $((SECONDS - start)) s | $headline" | tee -a "$SUMMARY"
  grep -m1 "first non-invariant" "$OUT_DIR/$name.txt" | sed "s/^/    /" | tee -a "$SUMMARY"
}

start=$SECONDS
python -m precdiff tiny save llama "$MODEL_DIR" --set hidden_size=2048 --set num_hidden_layers=16 \
  --set intermediate_size=8192 --set num_attention_heads=16 --set num_key_value_heads=8 --set vocab_size=32000 \
  > "$OUT_DIR/save.txt" 2>&1 || { echo "saving the model failed, see save.txt" | tee -a "$SUMMARY"; exit 2; }
echo "save: $((SECONDS - start)) s" | tee -a "$SUMMARY"

COMMON=(--device cuda --dtype bfloat16)
PARTS=${PARTS:-invariance determinism}
[[ $PARTS == *invariance* ]] && for kernels in standard batch-invariant; do
  for level in module op; do
    run "invariance_${kernels}_${level}" invariance "$MODEL_DIR" "${COMMON[@]}" --kernels "$kernels" \
      --batch-sizes 1,2,8,32 --level "$level"
  done
done
[[ $PARTS == *determinism* ]] && for kernels in standard batch-invariant; do
  run "determinism_${kernels}" determinism "$MODEL_DIR" "${COMMON[@]}" --kernels "$kernels" \
    --runs 100 --max-new-tokens 32
done
echo "total: $((SECONDS - start)) s" | tee -a "$SUMMARY"
