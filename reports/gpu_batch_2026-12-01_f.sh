#!/usr/bin/env bash
# H200 final batch of 2026-12-01 (third session): GPU suites (summary kernel incl. integer tensors,
# incremental summary resolution, pinned full-capture path, op replay), then the capture-overhead
# benchmarks: module level (summary with/without sketch, full, full+fsync vs the disk's sequential
# write, all in one run) and op level (1,244 ops per forward).
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_f.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    tests/gpu/test_op_replay_gpu.py $(ls tests/gpu/test_full_capture_gpu.py 2>/dev/null) 2>&1 | tail -15 | tee "$R/gpu_tests.log"
python benchmarks/capture_overhead.py --device cuda --repeats 7 --full-repeats 3 --tmp /tmp \
    --out "$R/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -9
python benchmarks/op_capture_overhead.py --device cuda --repeats 7 --tmp /tmp \
    --out "$R/op_capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -9
