#!/usr/bin/env bash
# H200 batch (third session of 2026-12-01): the summary kernel with its row-hash table, checked
# against the torch definitions, then its speed alone and inside the 8B module-level capture.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_d.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/e; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    2>&1 | tail -15 | tee "$R/gpu_tests.log"
python benchmarks/diagnose_capture_gpu.py --out "$R" --sections kernel 2>&1 | grep -v Warning
[ -f .gpuwork/timeline.py ] && python .gpuwork/timeline.py 2>&1 | grep -v Warn | tee "$R/timeline.txt"
python benchmarks/capture_overhead.py --device cuda --repeats 5 --modes plain,summary,summary-stats --tmp /tmp \
    --out "$R/capture_overhead_h200.json" 2>&1 | tail -5
