#!/usr/bin/env bash
# H200 batch of 2026-12-01 (seventh session), run s7d: the final commit (run s7c's code with the writer's
# index columns built in one place). Capture, summary and full-capture GPU suites; op-level and
# module-level capture overhead against 053124a in one process (--baseline .gpuwork/base053).
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_s7d.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
export PYTHONPATH=$PWD
timeout 200 python -m pytest -q -p no:cacheprovider tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    tests/gpu/test_full_capture_gpu.py 2>&1 | tail -4 | tee "$R/gpu_tests.log"
timeout 120 python benchmarks/op_capture_overhead.py --device cuda --repeats 8 --tmp /tmp \
    --modes plain,op,trace,host --baseline .gpuwork/base053 \
    --out "$R/op_capture_overhead.json" 2>&1 | grep -v Warn | tail -12
timeout 100 python benchmarks/capture_overhead.py --device cuda --repeats 12 --tmp /tmp \
    --modes plain,summary,host --baseline .gpuwork/base053 \
    --out "$R/capture_overhead.json" 2>&1 | grep -v Warn | tail -9
