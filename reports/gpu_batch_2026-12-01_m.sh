#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fourth session), last run: the same code as run l (GPU suites passed there),
# both capture-overhead benchmarks again with more interleaved rounds, and the phase timeline, for a
# second sample of the host's noise.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_m.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python benchmarks/op_capture_overhead.py --device cuda --repeats 15 --tmp /tmp \
    --modes plain,module,op,op-stats,trace \
    --out "$R/op_capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -8
python benchmarks/capture_overhead.py --device cuda --repeats 21 --tmp /tmp \
    --modes plain,summary,summary-stats \
    --out "$R/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -5
python benchmarks/capture_timeline.py 2>&1 | grep -v Warn | tee "$R/timeline.txt" | tail -6
