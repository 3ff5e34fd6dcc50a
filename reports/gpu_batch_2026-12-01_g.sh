#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fourth session), first run of the summary kernel that reads whole rows
# (vector loads; with the sketch, each program sums the rows of one offset and rotates once): the
# summary GPU suites, the kernel's launch-shape sweep, then both capture-overhead benchmarks with and
# without Python's garbage collector during the capture (`-nogc` modes), in one run.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_g.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    2>&1 | tail -15 | tee "$R/gpu_tests.log"
timeout 200 python benchmarks/sweep_summary_kernel.py 2>&1 | tee "$R/kernel_sweep.txt" | tail -4
python benchmarks/capture_overhead.py --device cuda --repeats 9 --tmp /tmp \
    --modes plain,summary,summary-nogc,summary-stats \
    --out "$R/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -7
python benchmarks/op_capture_overhead.py --device cuda --repeats 7 --tmp /tmp \
    --modes plain,module,op,op-nogc,trace \
    --out "$R/op_capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -8
