#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fourth session), third run: the summary GPU suites with shared launches
# (several small tensors of one dtype per kernel launch, op level) and the host time per tensor of
# one launch per tensor against shared launches (benchmarks/summary_launch_host.py).
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_i.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    2>&1 | tail -25 | tee "$R/gpu_tests.log"
python benchmarks/summary_launch_host.py --out "$R/summary_launch_host_h200.json" 2>&1 | tail -4
