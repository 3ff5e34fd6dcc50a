#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fourth session), last run: module level reduces its summaries 16 tensors
# at a time (was 64) and the sink appends the rows it has written before each wait for the device,
# so less is left to write once the device finishes. The summary GPU suites, module-level capture
# overhead (modes interleaved), and the phase timeline.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_p.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    2>&1 | tail -4 | tee "$R/gpu_tests.log"
python benchmarks/capture_overhead.py --device cuda --repeats 15 --tmp /tmp \
    --modes plain,summary,summary-stats \
    --out "$R/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -5
python benchmarks/capture_timeline.py 2>&1 | grep -v Warn | tee "$R/timeline.txt" | tail -6
