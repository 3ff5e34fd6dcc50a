#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fourth session), fifth run: the summary GPU suites with the kernel's loads
# running a step ahead, the launch-shape sweep (ahead or not, side by side), then both
# capture-overhead benchmarks (modes interleaved round by round) with the sweep's fastest sketch launch.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_k.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    2>&1 | tail -25 | tee "$R/gpu_tests.log"
timeout 240 python benchmarks/sweep_summary_kernel.py --best /tmp/best_launch 2>&1 | tee "$R/kernel_sweep.txt" | tail -3
LAUNCH=$(cat /tmp/best_launch 2>/dev/null || echo 512,4,4,8,1)
python benchmarks/capture_overhead.py --device cuda --repeats 9 --tmp /tmp --launch "$LAUNCH" \
    --modes plain,summary,summary-stats \
    --out "$R/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -5
python benchmarks/op_capture_overhead.py --device cuda --repeats 7 --tmp /tmp --launch "$LAUNCH" \
    --modes plain,module,op,trace \
    --out "$R/op_capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -7
