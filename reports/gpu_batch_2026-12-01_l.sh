#!/usr/bin/env bash
# H200 final batch of 2026-12-01 (fourth session): the GPU suites (summary kernel with vector loads and
# shared launches, op level end to end, pinned full capture, op replay), then the capture-overhead
# benchmarks with their modes interleaved round by round: module level (summary, statistics only,
# full, full+fsync against the disk's sequential write) and op level (1,244 ops per forward), and
# the phase timeline of one capture. Each benchmark records the host's CPU load and steal.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_l.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    tests/gpu/test_op_replay_gpu.py tests/gpu/test_full_capture_gpu.py 2>&1 | tail -6 | tee "$R/gpu_tests.log"
python benchmarks/op_capture_overhead.py --device cuda --repeats 11 --tmp /tmp \
    --modes plain,module,op,op-stats,trace \
    --out "$R/op_capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -8
python benchmarks/capture_overhead.py --device cuda --repeats 15 --full-repeats 3 --tmp /tmp \
    --out "$R/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -9
python benchmarks/capture_timeline.py 2>&1 | grep -v Warn | tee "$R/timeline.txt" | tail -6
