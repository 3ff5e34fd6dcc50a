#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fourth session), fourth run: the summary GPU suites (op level with shared
# launches end to end), then both capture-overhead benchmarks in one run each.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_j.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    2>&1 | tail -25 | tee "$R/gpu_tests.log"
python benchmarks/op_capture_overhead.py --device cuda --repeats 7 --tmp /tmp \
    --modes plain,module,op,op-stats,trace \
    --out "$R/op_capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -8
python benchmarks/capture_overhead.py --device cuda --repeats 9 --tmp /tmp \
    --modes plain,summary,summary-stats \
    --out "$R/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -5
