#!/usr/bin/env bash
# H200 batch of 2026-12-01 (second session): the fused summary kernel and the sketch/alias/op-call
# capture paths on CUDA, then the capture-overhead benchmarks (summary with and without sketches, op
# level, full capture against the disk's sequential write), and the op-level benchmark on the CPU.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_c.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    tests/gpu/test_op_replay_gpu.py 2>&1 | tail -15 | tee "$R/gpu_tests.log"
python benchmarks/op_capture_overhead.py --device cuda --repeats 5 --tmp /tmp \
    --out "$R/op_capture_overhead_h200.json" 2>&1 | tail -9
python benchmarks/capture_overhead.py --device cuda --repeats 5 --full-repeats 2 --tmp /tmp \
    --out "$R/capture_overhead_h200.json" 2>&1 | tail -9
timeout 200 python benchmarks/op_capture_overhead.py --device cpu --layers 2 --repeats 1 \
    --modes plain,module,op,trace --tmp /tmp --out "$R/op_capture_overhead_cpu_8b2layers.json" 2>&1 | tail -7
